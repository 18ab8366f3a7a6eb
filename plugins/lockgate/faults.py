"""Fault injection for the reprocessing scenarios: named points where a run can be made
to fail, be killed or hang, so that tests prove a re-run converges to the same warehouse.

Inactive unless ``LOCKGATE_FAILPOINTS`` is set, e.g.::

    LOCKGATE_FAILPOINTS="load.before_commit@orders"        # raise there, table orders only
    LOCKGATE_FAILPOINTS="extract.chunk_written#2=raise"     # raise on the 2nd chunk written
    LOCKGATE_FAILPOINTS="load.before_commit=kill"           # SIGKILL this process there
    LOCKGATE_FAILPOINTS="load.before_commit=hang"           # sleep (until killed)

Points: ``extract.chunk_start`` (before a chunk's snapshot or first count),
``extract.chunk_snapshot`` (the chunk is counted, its rows not read yet),
``extract.chunk_written``, ``extract.before_seal``, ``validate.before_report``,
``load.copied_part`` (PostgreSQL warehouse: a part of the parallel ``COPY`` is in the
staging table), ``load.before_commit``, ``load.after_commit``, ``publish.before_commit``.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

from lockgate.errors import LockgateError

_hits: Counter[str] = Counter()


def reset() -> None:
    """Forget the hits counted so far (``#n`` counts from here): a new scenario."""
    _hits.clear()


class InjectedFault(LockgateError):
    """A failure requested through ``LOCKGATE_FAILPOINTS``."""


def _parse(spec: str) -> list[tuple[str, str | None, int | None, str]]:
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        item, _, action = item.partition("=")
        item, _, nth = item.partition("#")
        point, _, table = item.partition("@")
        rules.append((point, table or None, int(nth) if nth else None, action or "raise"))
    return rules


def hit(point: str, table: str | None = None) -> None:
    """Fail here if a rule in ``LOCKGATE_FAILPOINTS`` matches this point (and table)."""
    spec = os.environ.get("LOCKGATE_FAILPOINTS")
    if not spec:
        return
    for name, only_table, nth, action in _parse(spec):
        if name != point or (only_table and only_table != table):
            continue
        _hits[f"{point}@{table}"] += 1
        if nth is not None and _hits[f"{point}@{table}"] != nth:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "hang":
            time.sleep(3600)
        raise InjectedFault(f"injected failure at {point} (table {table})")
