"""A raw batch as DuckDB's ``lockgate_stage``: counted, summed, quarantined rows set aside.

Both warehouses stage through DuckDB: the DuckDB warehouse in its own connection, the
PostgreSQL one in an in-memory DuckDB that then streams the rows to the server. The
quarantine rules are DuckDB predicates (:mod:`lockgate.quality`), evaluated here.
"""

from __future__ import annotations

import os
from pathlib import Path

from lockgate.identifiers import sql_ident, sql_text
from lockgate.warehouse.base import Batch, Staged

STAGE = "lockgate_stage"


def stage_in_duckdb(conn, batch: Batch) -> Staged:
    """Create ``lockgate_stage`` over the batch's Parquet files in ``conn``.

    The sealed lake files are immutable, so the stage is a view over them: DuckDB reads
    Parquet in parallel and a count is metadata only, while copying 5M rows into a temp
    table first cost more than the insert itself. Quarantine edits the batch, so it
    gets a table. An empty batch is an empty relation of the batch's types.
    """
    select_list = ", ".join(sql_ident(c) for c in batch.columns)
    if batch.files:
        file_list = "[" + ", ".join(sql_text(f) for f in batch.files) + "]"
        query = f"SELECT {select_list} FROM read_parquet({file_list})"
    else:
        query = "SELECT " + ", ".join(f"NULL::{t} AS {sql_ident(c)}" for c, t in batch.types.items()) + " LIMIT 0"
    kind = "TABLE" if batch.quarantine else "VIEW"
    conn.execute(f"CREATE OR REPLACE TEMP {kind} {STAGE} AS {query}")
    rows = conn.execute(f"SELECT count(*) FROM {STAGE}").fetchone()[0]
    total = None
    if batch.sum_column:
        total = conn.execute(f"SELECT sum({sql_ident(batch.sum_column)})::VARCHAR FROM {STAGE}").fetchone()[0]
    quarantined = set_aside(conn, batch.quarantine, batch.quarantine_file) if batch.quarantine else 0
    return Staged(STAGE, int(rows), quarantined, total, kind=kind, distinct_keys=_distinct_keys(conn, batch))


def _distinct_keys(conn, batch: Batch) -> int | None:
    if not batch.primary_key:
        return None
    keys = ", ".join(sql_ident(k) for k in batch.primary_key)
    return int(conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {STAGE}) AS d").fetchone()[0])


def drop_stage(conn, staged: Staged) -> None:
    conn.execute(f"DROP {staged.kind} IF EXISTS {STAGE}")


def set_aside(conn, rules: list[tuple[str, str]], path: str | Path | None) -> int:
    """Move the staged rows that break row-level rules out of ``lockgate_stage``."""
    flags = ", ".join(f"CASE WHEN coalesce(({sql}), FALSE) THEN {sql_text(name)} END" for name, sql in rules)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE lockgate_bad AS SELECT * FROM ("
        f"SELECT s.*, list_filter([{flags}], x -> x IS NOT NULL) AS _lockgate_failed_rules "
        f"FROM {STAGE} s) WHERE len(_lockgate_failed_rules) > 0"
    )
    count = conn.execute("SELECT count(*) FROM lockgate_bad").fetchone()[0]
    if count and path is None:
        raise ValueError("rows to quarantine but no quarantine file given")
    if count:
        _write_quarantine(conn, path)
        any_rule = " OR ".join(f"coalesce(({sql}), FALSE)" for _, sql in rules)
        # Evaluate every predicate against the full batch first (uniqueness looks at all rows).
        conn.execute(f"CREATE OR REPLACE TEMP TABLE lockgate_good AS SELECT * FROM {STAGE} WHERE NOT ({any_rule})")
        conn.execute(f"DROP TABLE {STAGE}")
        conn.execute(f"ALTER TABLE lockgate_good RENAME TO {STAGE}")
    conn.execute("DROP TABLE lockgate_bad")
    return int(count)


def _write_quarantine(conn, path) -> None:
    """``lockgate_bad`` as one Parquet file, whole or not at all: a rename in a local
    lake; in S3 DuckDB's upload completes the object only at the end."""
    from lockgate.lake import is_local, lake_path

    path = lake_path(path)
    if not is_local(path):
        conn.execute(f"COPY lockgate_bad TO {sql_text(str(path))} (FORMAT parquet, COMPRESSION zstd)")
        return
    target = path
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    conn.execute(f"COPY lockgate_bad TO {sql_text(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(temp, target)
