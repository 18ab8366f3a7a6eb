"""Small helpers shared by the cursor scenarios."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
from lockgate.pipeline import RunInfo


def batch_ids(result: dict, key: str = "id") -> set[int]:
    """The keys of the rows a run read (its sealed raw folder)."""
    files = sorted(Path(result["raw_path"]).glob("part-*.parquet"))
    return {v for f in files for v in pq.read_table(f, columns=[key]).column(0).to_pylist()}


def run_between(src, table: str, start: datetime, end: datetime, tag: str = "") -> dict:
    """Run the four stages of ``table`` for the data interval ``[start, end)``."""
    src.runs += 1
    run = RunInfo(run_id=f"scheduled__{start.isoformat()}__{src.runs}{tag}", interval_start=start, interval_end=end)
    return src.run(table, run)


def create(src, name: str, ddl: str, **config) -> None:
    """Create a source table (``{ts}``: the engine's naive timestamp type) and declare it."""
    src.sql(ddl.format(ts=src.ts_type, name=name))
    src.tables[name] = {"name": name, "fetch_size": 500, **config}
