"""Shared helpers of the cursor-contract tests: run a table through the four stages and
read back what the warehouse holds, typed, for comparison with the source's values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate import pipeline, warehouse
from lockgate.config import parse_source
from lockgate.pipeline import RunInfo

D1 = datetime(2026, 3, 1, tzinfo=UTC)
D2 = datetime(2026, 3, 2, tzinfo=UTC)


def config(source: str, connection: str, **table: Any):
    entry = {"name": "t", "primary_key": ["id"], "mode": "full", **table}
    return parse_source(
        {"source": source, "connection": connection, "start_date": "2026-03-01", "tables": [entry]}, f"{source}.yml"
    )


def ingest(cfg, settings, spark, run_id: str = "r1") -> dict[str, Any]:
    table = cfg.tables[0]
    run = RunInfo(run_id=run_id, interval_start=D1, interval_end=D2)
    extracted = pipeline.extract_stage(cfg, table, run, settings=settings, spark=spark)
    pipeline.validate_stage(cfg, table, run, extracted["raw_path"], settings=settings, spark=spark)
    pipeline.load_stage(cfg, table, run, extracted["raw_path"], settings=settings)
    pipeline.publish_stage(cfg, table, run, extracted["raw_path"], settings=settings)
    return extracted


def warehouse_table(settings, source: str, table: str = "t") -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The warehouse table's column types and its rows (as dicts, by ``id``)."""
    with warehouse.connect(settings, read_only=True) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? ORDER BY ordinal_position",
                [source, table],
            ).fetchall()
        )
        cur = conn.execute(f'SELECT * FROM "{source}"."{table}" ORDER BY id')
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return types, rows


def lake_files(settings) -> list[Path]:
    return [p for p in Path(settings.lake_root).rglob("*") if p.is_file()]
