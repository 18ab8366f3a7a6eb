"""The DuckDB warehouse: idempotent loads, the audit trail and the watermarks.

Load semantics (one transaction each, so a failure leaves the table as it was):

- ``append``: warehouse rows whose cursor lies in the slice are replaced by the slice.
- ``merge``: upsert by primary key, the newest cursor wins; intervals may run in any
  order or twice and the table ends the same.
- ``full``: the table's rows are replaced by the snapshot.

Schema drift is checked before anything is written: a new source column is added
(nullable) and recorded in ``lockgate.schema_history``; a changed type or a dropped
column raises :class:`~lockgate.errors.SchemaDriftError`.

DuckDB lets one process write a database file at a time; :func:`connect` waits for
the lock, so parallel Airflow tasks take turns instead of failing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate.config import FILE_COLUMN
from lockgate.cursors import Cursor
from lockgate.errors import ConfigError, SchemaDriftError
from lockgate.identifiers import sql_ident, sql_text
from lockgate.incremental import Bound, TableState
from lockgate.lake.catalog import Partition, view_sql
from lockgate.typemap import warehouse_type

LOCK_WAIT_SECONDS = 300

log = logging.getLogger("lockgate")

_DDL = """
CREATE SCHEMA IF NOT EXISTS lockgate;
CREATE TABLE IF NOT EXISTS lockgate.runs (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    mode VARCHAR,
    interval_start TIMESTAMPTZ,
    interval_end TIMESTAMPTZ,
    slice_lo TIMESTAMPTZ,
    slice_hi TIMESTAMPTZ,
    raw_path VARCHAR,
    source_rows BIGINT,
    rows_extracted BIGINT,
    rows_validated BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    rules_evaluated INTEGER,
    rules_failed INTEGER,
    validation_status VARCHAR,
    quality_report VARCHAR,
    status VARCHAR NOT NULL,
    error VARCHAR,
    extract_seconds DOUBLE,
    validate_seconds DOUBLE,
    load_seconds DOUBLE,
    started_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS lockgate.state (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    watermark TIMESTAMPTZ,
    cursor_max VARCHAR,
    last_run_id VARCHAR,
    updated_at TIMESTAMPTZ
);
-- Rows behind the watermark that a still-open source transaction may yet commit:
-- the next run that reaches past reread_until re-reads from reread_from.
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_from TIMESTAMPTZ;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_until TIMESTAMPTZ;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS safe_hi TIMESTAMPTZ;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS rows_deleted BIGINT;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS rules_passed INTEGER;
-- One audit row per run *version*: 0 as scheduled, n after the run's n-th clear.
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS version INTEGER DEFAULT 0;
-- When the batch's rows were read from the source (a replay keeps the original time).
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS read_at TIMESTAMPTZ;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS replayed_from VARCHAR;
-- Source rows skipped because their cursor is NULL (null_cursor: exclude).
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS rows_null_cursor BIGINT;
-- Slices, safe points and watermarks of an id cursor are ids, not times (*_id columns).
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS slice_lo_id BIGINT;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS slice_hi_id BIGINT;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS safe_hi_id BIGINT;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS watermark_id BIGINT;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_from_id BIGINT;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_until_id BIGINT;
-- Delete propagation: the newest key snapshot applied to each table. Flags and deletes
-- only move forward in snapshot time: an older key snapshot (a run that finished late,
-- a replay) is not applied. Its own table: save_state rewrites lockgate.state rows.
CREATE TABLE IF NOT EXISTS lockgate.key_snapshots (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    keys_read_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS lockgate.landed_files (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    file_key VARCHAR NOT NULL,
    size BIGINT NOT NULL,
    modified TIMESTAMPTZ NOT NULL,
    etag VARCHAR,
    sha256 VARCHAR,
    interval_start TIMESTAMPTZ,
    interval_end TIMESTAMPTZ,
    run_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    rows_in BIGINT,
    rows_parsed BIGINT,
    rows_rejected BIGINT,
    status VARCHAR NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS lockgate.schema_history (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    column_name VARCHAR NOT NULL,
    change VARCHAR NOT NULL,
    old_type VARCHAR,
    new_type VARCHAR,
    run_id VARCHAR,
    changed_at TIMESTAMPTZ
);
"""


q = sql_ident


def spark_to_duckdb(spark_type: str, *, where: str = "", column: str = "") -> str:
    """Map a Spark ``simpleString`` type to the DuckDB type Parquet will load as
    (:mod:`lockgate.typemap`); an unmapped type names ``where`` and ``column``."""
    return warehouse_type(spark_type, where=where or "?.?", column=column or "?")


def _wanted_types(source: str, table: str, manifest_schema: list[dict]) -> dict[str, str]:
    where = f"{source}.{table}"
    return {col["name"]: spark_to_duckdb(col["type"], where=where, column=col["name"]) for col in manifest_schema}


def _normalise(duck_type: str) -> str:
    t = duck_type.upper()
    if t.endswith("[]"):
        return _normalise(t[:-2]) + "[]"
    return {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "INT": "INTEGER", "TEXT": "VARCHAR", "REAL": "FLOAT"}.get(t, t)


#: Schemas Lockgate owns in the warehouse (besides one per source).
RESERVED_SCHEMAS = ("lockgate", "lake")


@contextmanager
def connect(path: str | Path, *, read_only: bool = False, wait: float = LOCK_WAIT_SECONDS) -> Iterator[Any]:
    """Open the warehouse, waiting for another writer's lock to go away."""
    import duckdb

    path = Path(path)
    if path.stem in RESERVED_SCHEMAS:
        # DuckDB names the catalog after the file; `lockgate.runs` would then be ambiguous.
        raise ConfigError(
            f"warehouse file {path}: the name '{path.stem}' clashes with the '{path.stem}' schema; "
            "choose another file name (e.g. warehouse.duckdb)"
        )
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        if not read_only:
            conn.execute(_DDL)
        _attach_lake(conn)
        yield conn
    finally:
        conn.close()


def _attach_lake(conn) -> None:
    """An S3 lake is read (load, ``lake.*`` views, ``lockgate sql``) through httpfs."""
    from lockgate.lake.duck import attach_lake
    from lockgate.settings import load_settings

    attach_lake(conn, load_settings())


def table_columns(conn, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return {name: _normalise(dtype) for name, dtype in rows}


def reconcile_schema(conn, source: str, table: str, manifest_schema: list[dict], run_id: str) -> list[str]:
    """Create the table or follow additive drift; refuse destructive drift.

    Returns the changes made (``added <col> <type>``).
    """
    wanted = _wanted_types(source, table, manifest_schema)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q(source)}")
    existing = table_columns(conn, source, table)
    if not existing:
        columns = ", ".join(f"{q(name)} {dtype}" for name, dtype in wanted.items())
        conn.execute(f"CREATE TABLE {q(source)}.{q(table)} ({columns})")
        return [f"created {table}"]
    problems = _drift_problems(existing, wanted)
    if problems:
        raise SchemaDriftError(
            f"{source}.{table}: schema changed in the source; nothing was loaded: " + "; ".join(problems)
        )
    changes = []
    now = datetime.now(UTC)
    for name, dtype in wanted.items():
        if name not in existing:
            conn.execute(f"ALTER TABLE {q(source)}.{q(table)} ADD COLUMN {q(name)} {dtype}")
            conn.execute(
                "INSERT INTO lockgate.schema_history VALUES (?, ?, ?, 'added', NULL, ?, ?, ?)",
                [source, table, name, dtype, run_id, now],
            )
            changes.append(f"added {name} {dtype}")
    return changes


def _cursor_literal(conn, source: str, table: str, cursor: Cursor, value: datetime) -> str:
    """A bound of the cursor for the warehouse column, equal to the source's bound
    (:meth:`Cursor.duck_literal`: kinds, zones, whole days)."""
    kind = table_columns(conn, source, table).get(cursor.columns[0], "")
    return cursor.duck_literal(kind, value)


def load_files(
    conn,
    *,
    source: str,
    table: str,
    mode: str,
    files: list[str],
    schema: list[dict],
    primary_key: list[str],
    cursor: str | None,
    slice_lo: datetime | None,
    slice_hi: datetime | None,
    full_slice: bool,
    run_id: str,
    version: int = 0,
    read_at: datetime | None = None,
    quarantine: list[tuple[str, str]] | None = None,
    quarantine_file: str | Path | None = None,
    sum_column: str | None = None,
    cursor_rules: Cursor | None = None,
    replace_files: list[str] | None = None,
) -> dict[str, Any]:
    """Load Parquet files into ``<source>.<table>`` in the caller's open transaction.

    ``replace_files`` (a files table's ``append``): the rows of these landing files are
    replaced by the batch's, whatever run loaded them before.

    ``quarantine`` is a list of ``(rule name, SQL predicate true for a breaking row)``:
    those rows are written to ``quarantine_file`` (Parquet, with the rules each broke in
    ``_lockgate_failed_rules``) and not loaded; the rest loads.

    The newest read wins: a batch read at ``read_at`` never replaces rows that a read
    made later already loaded (a replay of an older raw version, or two runs finishing
    out of order). ``append`` leaves out the cursor ranges such newer reads covered;
    ``full`` loads nothing when a newer snapshot is loaded; ``merge`` keeps the newest
    cursor per key anyway.
    """
    # Rows are inserted in no particular order: DuckDB then writes the new row groups to
    # the file in parallel as the transaction commits, instead of keeping them for the
    # checkpoint when the connection closes (6M-row TPC-H lineitem: 7.2 s → 4.8 s to a
    # closed file). Nothing reads the warehouse's physical row order; the setting stays
    # for the rest of this connection.
    conn.execute("SET preserve_insertion_order = false")
    changes = reconcile_schema(conn, source, table, schema, run_id)
    cursor_rules = cursor_rules or Cursor.named(cursor)
    target = f"{q(source)}.{q(table)}"
    columns = [col["name"] for col in schema]
    select_list = ", ".join(q(c) for c in columns)
    if files:
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        batch = f"SELECT {select_list} FROM read_parquet({file_list})"
    else:
        batch = f"SELECT {select_list} FROM {target} LIMIT 0"
    # The sealed lake files are immutable, so the batch is a view over them: DuckDB reads
    # Parquet in parallel and a count is metadata only, while copying 5M rows into a temp
    # table first cost more than the insert itself. Quarantine edits the batch, so it
    # gets a table.
    kind = "TABLE" if quarantine else "VIEW"
    conn.execute(f"CREATE OR REPLACE TEMP {kind} lockgate_stage AS {batch}")
    staged = conn.execute("SELECT count(*) FROM lockgate_stage").fetchone()[0]
    staged_sum = (
        conn.execute(f"SELECT sum({q(sum_column)})::VARCHAR FROM lockgate_stage").fetchone()[0] if sum_column else None
    )
    quarantined = 0
    if quarantine:
        quarantined = _set_aside(conn, quarantine, quarantine_file)
    before = conn.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    cols = ", ".join(q(c) for c in columns)
    newer = newer_reads(conn, source, table, run_id, version, read_at)
    superseded = 0

    if mode == "full" or full_slice and mode == "append" and not newer:
        if mode == "full" and newer:
            superseded = staged - quarantined  # a newer snapshot is loaded: keep it
        else:
            conn.execute(f"DELETE FROM {target}")
            conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM lockgate_stage")
    elif mode == "append" and replace_files is not None:
        if replace_files:
            keys = ", ".join(_sql_text(k) for k in replace_files)
            conn.execute(f"DELETE FROM {target} WHERE {q(FILE_COLUMN)} IN ({keys})")
        conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM lockgate_stage")
    elif mode == "append":
        own = _range_sql(conn, source, table, cursor_rules, slice_lo, slice_hi)
        taken = " OR ".join(_range_sql(conn, source, table, cursor_rules, lo, hi) for lo, hi in newer)
        keep = f"NOT ({taken})" if taken else "true"
        if taken:
            superseded = conn.execute(f"SELECT count(*) FROM lockgate_stage WHERE NOT ({keep})").fetchone()[0]
        conn.execute(f"DELETE FROM {target} WHERE ({own}) AND {keep}")
        conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM lockgate_stage WHERE {keep}")
    elif mode == "merge":
        _merge(conn, target, columns, primary_key, cursor_rules, empty_target=before == 0)
    else:
        raise ConfigError(f"{source}.{table}: unknown load mode '{mode}'")
    after = conn.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    conn.execute(f"DROP {kind} lockgate_stage")
    return {
        "rows_staged": staged,
        "rows_loaded": staged - quarantined - superseded,
        "rows_superseded": superseded,
        "rows_quarantined": quarantined,
        "staged_sum": staged_sum,
        "rows_before": before,
        "rows_after": after,
        "schema_changes": changes,
    }


def newer_reads(
    conn, source: str, table: str, run_id: str, version: int, read_at: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """Slices of loaded batches of the table read from the source after ``read_at``
    (every loaded batch when ``read_at`` is unknown), other than this run version's."""
    rows = conn.execute(
        "SELECT slice_lo, slice_lo_id, slice_hi, slice_hi_id FROM lockgate.runs WHERE source = ? AND table_name = ? "
        "AND status IN ('loaded', 'published') AND read_at IS NOT NULL "
        "AND (CAST(? AS TIMESTAMPTZ) IS NULL OR read_at > CAST(? AS TIMESTAMPTZ)) "
        "AND NOT (run_id = ? AND coalesce(version, 0) = ?)",
        [source, table, read_at, read_at, run_id, version],
    ).fetchall()
    return [(_either(lo_id, lo), _either(hi_id, hi)) for lo, lo_id, hi, hi_id in rows]


def read_positions(conn, source: str, table: str) -> list[tuple[int, datetime]]:
    """``(slice end, read time)`` of the table's published reads of an ``id`` cursor
    (:meth:`lockgate.incremental.Incremental.safe_position`)."""
    return conn.execute(
        "SELECT slice_hi_id, read_at FROM lockgate.runs WHERE source = ? AND table_name = ? AND status = 'published' "
        "AND slice_hi_id IS NOT NULL AND read_at IS NOT NULL AND replayed_from IS NULL",
        [source, table],
    ).fetchall()


def _range_sql(conn, source: str, table: str, cursor: Cursor, lo: datetime | None, hi: datetime | None) -> str:
    """The warehouse rows of a slice: the same cursor expression and bounds as the read."""
    expr, terms = cursor.duck_expr(), []
    if lo is not None:
        terms.append(f"{expr} >= {_cursor_literal(conn, source, table, cursor, lo)}")
    if hi is not None:
        terms.append(f"{expr} < {_cursor_literal(conn, source, table, cursor, hi)}")
    return "(" + (" AND ".join(terms) or "true") + ")"


def _merge(conn, target: str, columns: list[str], primary_key: list[str], cursor: Cursor, *, empty_target: bool) -> None:
    """Upsert ``lockgate_stage`` into ``target``: per key the row with the newest cursor wins.

    Each step is skipped when it cannot change anything, because on a large batch each
    costs a full pass: the batch is deduplicated only when a key repeats in it, and an
    empty target takes a plain insert. Otherwise target rows the batch supersedes are
    deleted, and the batch is inserted except for keys whose target row is newer (found
    by a join that hashes the batch, not the target).
    """
    cols = ", ".join(q(c) for c in columns)
    key_list = ", ".join(q(k) for k in primary_key)
    keys = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in primary_key)
    rows, distinct = conn.execute(
        f"SELECT (SELECT count(*) FROM lockgate_stage), (SELECT count(*) FROM (SELECT DISTINCT {key_list} FROM lockgate_stage))"
    ).fetchone()
    batch = "lockgate_stage"
    if distinct < rows:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE lockgate_batch AS SELECT * FROM lockgate_stage "
            f"QUALIFY row_number() OVER (PARTITION BY {key_list} ORDER BY {cursor.duck_expr()} DESC NULLS LAST) = 1"
        )
        batch = "lockgate_batch"
    if empty_target:
        conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {batch}")
    else:
        s_cursor, t_cursor = cursor.duck_expr("s."), cursor.duck_expr("t.")
        newer = f"({s_cursor} >= {t_cursor} OR {t_cursor} IS NULL)"
        conn.execute(f"DELETE FROM {target} t USING {batch} s WHERE {keys} AND {newer}")
        # Rows still matching a batch key are newer than the batch's: keep them.
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE lockgate_kept AS SELECT {', '.join('t.' + q(k) for k in primary_key)} "
            f"FROM {target} t JOIN {batch} s ON {keys}"
        )
        conn.execute(
            f"INSERT INTO {target} ({cols}) SELECT {', '.join('s.' + q(c) for c in columns)} FROM {batch} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM lockgate_kept t WHERE {keys})"
        )
        conn.execute("DROP TABLE lockgate_kept")
    if batch == "lockgate_batch":
        conn.execute("DROP TABLE lockgate_batch")


def _write_quarantine(conn, path) -> None:
    """``lockgate_bad`` as one Parquet file, whole or not at all: a rename in a local
    lake; in S3 DuckDB's upload completes the object only at the end."""
    from lockgate.lake import is_local, lake_path

    path = lake_path(path)
    if not is_local(path):
        conn.execute(f"COPY lockgate_bad TO {_sql_text(str(path))} (FORMAT parquet, COMPRESSION zstd)")
        return
    target = path
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    conn.execute(f"COPY lockgate_bad TO {_sql_text(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(temp, target)


def _set_aside(conn, rules: list[tuple[str, str]], path: str | Path | None) -> int:
    """Move the staged rows that break row-level rules out of ``lockgate_stage``."""
    flags = ", ".join(f"CASE WHEN coalesce(({sql}), FALSE) THEN {_sql_text(name)} END" for name, sql in rules)
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE lockgate_bad AS SELECT * FROM ("
        f"SELECT s.*, list_filter([{flags}], x -> x IS NOT NULL) AS _lockgate_failed_rules "
        "FROM lockgate_stage s) WHERE len(_lockgate_failed_rules) > 0"
    )
    count = conn.execute("SELECT count(*) FROM lockgate_bad").fetchone()[0]
    if count and path is None:
        raise ValueError("rows to quarantine but no quarantine file given")
    if count:
        _write_quarantine(conn, path)
        any_rule = " OR ".join(f"coalesce(({sql}), FALSE)" for _, sql in rules)
        # Evaluate every predicate against the full batch first (uniqueness looks at all rows).
        conn.execute(f"CREATE OR REPLACE TEMP TABLE lockgate_good AS SELECT * FROM lockgate_stage WHERE NOT ({any_rule})")
        conn.execute("DROP TABLE lockgate_stage")
        conn.execute("ALTER TABLE lockgate_good RENAME TO lockgate_stage")
    conn.execute("DROP TABLE lockgate_bad")
    return int(count)


_sql_text = sql_text


# --- audit trail and watermarks -----------------------------------------------------
_RUN_COLUMNS = {
    "mode", "interval_start", "interval_end", "slice_lo", "slice_hi", "raw_path", "source_rows",
    "rows_extracted", "rows_validated", "rows_loaded", "rows_quarantined", "rules_evaluated", "rules_failed",
    "validation_status", "quality_report", "status", "error", "extract_seconds", "validate_seconds",
    "load_seconds", "safe_hi", "rows_deleted", "rules_passed", "read_at", "replayed_from", "rows_null_cursor",
    "slice_lo_id", "slice_hi_id", "safe_hi_id",
}  # fmt: skip
_ID_COLUMNS = {"slice_lo", "slice_hi", "safe_hi"}
_RUN_KEY = "source = ? AND table_name = ? AND run_id = ? AND coalesce(version, 0) = ?"


def record_run(conn, source: str, table: str, run_id: str, *, version: int = 0, **fields: Any) -> None:
    """Create or update the audit row of one table in one run version (an id cursor's
    slice bounds go to the ``*_id`` columns)."""
    unknown = set(fields) - _RUN_COLUMNS
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    for name in _ID_COLUMNS & set(fields):
        value = fields[name]
        if isinstance(value, int) and not isinstance(value, bool):
            fields[name], fields[f"{name}_id"] = None, value
    now = datetime.now(UTC)
    key = [source, table, run_id, version]
    exists = conn.execute(f"SELECT count(*) FROM lockgate.runs WHERE {_RUN_KEY}", key).fetchone()[0]
    if exists:
        sets = ", ".join(f"{k} = ?" for k in fields)
        conn.execute(
            f"UPDATE lockgate.runs SET {sets}{', ' if sets else ''}updated_at = ? WHERE {_RUN_KEY}",
            [*fields.values(), now, *key],
        )
    else:
        fields.setdefault("status", "started")
        names = ", ".join(["source", "table_name", "run_id", "version", *fields, "started_at", "updated_at"])
        marks = ", ".join("?" * (len(fields) + 6))
        conn.execute(f"INSERT INTO lockgate.runs ({names}) VALUES ({marks})", [*key, *fields.values(), now, now])


def run_status(conn, source: str, table: str, run_id: str, version: int = 0) -> dict[str, Any] | None:
    cursor = conn.execute(f"SELECT * FROM lockgate.runs WHERE {_RUN_KEY}", [source, table, run_id, version])
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def get_watermark(conn, source: str, table: str) -> datetime | None:
    return get_state(conn, source, table).watermark


def get_state(conn, source: str, table: str) -> TableState:
    """The table's checkpoint: watermark and the pending re-read window (if any)."""
    row = conn.execute(
        "SELECT watermark, watermark_id, reread_from, reread_from_id, reread_until, reread_until_id, cursor_max, "
        "last_run_id FROM lockgate.state WHERE source = ? AND table_name = ?",
        [source, table],
    ).fetchone()
    if row is None:
        return TableState()
    mark, mark_id, since, since_id, until, until_id, cursor_max, last_run = row
    return TableState(
        _either(mark_id, mark), _either(since_id, since), _either(until_id, until), cursor_max, last_run
    )


def save_state(conn, source: str, table: str, state: TableState) -> None:
    """Store the table's checkpoint (the rules that compute it live in :mod:`lockgate.incremental`)."""
    conn.execute("DELETE FROM lockgate.state WHERE source = ? AND table_name = ?", [source, table])
    mark, since, until = (_split(v) for v in (state.watermark, state.reread_from, state.reread_until))
    conn.execute(
        "INSERT INTO lockgate.state (source, table_name, watermark, watermark_id, cursor_max, last_run_id, "
        "updated_at, reread_from, reread_from_id, reread_until, reread_until_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [source, table, *mark, state.cursor_max, state.last_run_id, datetime.now(UTC), *since, *until],
    )  # fmt: skip


def _split(value: Bound | None) -> tuple[datetime | None, int | None]:
    """A bound as its two columns: ``(time, None)`` or ``(None, id)``."""
    return (None, value) if isinstance(value, int) else (value, None)


def _either(position: int | None, instant: datetime | None) -> Bound | None:
    return position if position is not None else instant


def check_schema(conn, source: str, table: str, manifest_schema: list[dict]) -> None:
    """Raise :class:`SchemaDriftError` if the batch cannot be loaded without loss
    (a column dropped or retyped in the source). Read-only; new columns are fine."""
    existing = table_columns(conn, source, table)
    if not existing:
        return
    wanted = _wanted_types(source, table, manifest_schema)
    problems = _drift_problems(existing, wanted)
    if problems:
        raise SchemaDriftError(
            f"{source}.{table}: schema changed in the source; nothing was loaded: " + "; ".join(problems)
        )


def _drift_problems(existing: dict[str, str], wanted: dict[str, str]) -> list[str]:
    problems = []
    for name, old_type in existing.items():
        if name.startswith("_lockgate_"):
            continue
        if name not in wanted:
            problems.append(f"column '{name}' was dropped in the source (old type {old_type}, new type: none)")
        elif _normalise(wanted[name]) != old_type:
            problems.append(f"column '{name}' changed type from {old_type} to {_normalise(wanted[name])}")
    return problems


def propagate_deletes(
    conn,
    *,
    source: str,
    table: str,
    policy: str,
    key_files: list[str],
    primary_key: list[str],
    cursor: str | None,
    keys_read_at: datetime | None,
    cursor_rules: Cursor | None = None,
    read_up_to: int | None = None,
) -> int:
    """Remove (``delete``) or mark (``flag``) warehouse rows whose key is gone from the source.

    ``keys_read_at`` is the key snapshot's time (capped by the oldest source transaction
    open then). Rows whose cursor is at or after it are left alone: they may have been
    committed or loaded after this key snapshot was taken. An ``id`` cursor has no time:
    rows at or above ``read_up_to`` (the batch's slice end) are left alone. A flagged row's
    ``_lockgate_deleted_at`` is that time: its key was gone from the source then.

    Key snapshots only move forward: the newest one applied is kept per table in
    ``lockgate.key_snapshots``, and an older one — a run that finishes after a later
    run, a replay of an old batch — is skipped (returns 0): it could delete a row
    inserted since, or un-flag a row deleted since. Runs in the caller's transaction.
    """
    target = f"{q(source)}.{q(table)}"
    if keys_read_at is not None:
        keys_read_at = keys_read_at.astimezone(UTC) if keys_read_at.tzinfo else keys_read_at.replace(tzinfo=UTC)
        newer = conn.execute(
            "SELECT max(keys_read_at) FROM lockgate.key_snapshots WHERE source = ? AND table_name = ? "
            "AND keys_read_at > CAST(? AS TIMESTAMPTZ)",
            [source, table, keys_read_at],
        ).fetchone()[0]
        if newer is not None:
            log.warning(
                "%s.%s: delete propagation skipped: its key snapshot (%s) is older than the one already applied (%s)",
                source,
                table,
                keys_read_at.isoformat(),
                newer.isoformat() if hasattr(newer, "isoformat") else newer,
            )
            return 0
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in key_files) + "]"
    conn.execute(f"CREATE OR REPLACE TEMP TABLE lockgate_keys AS SELECT * FROM read_parquet({file_list})")
    match = " AND ".join(f"k.{q(c)} = t.{q(c)}" for c in primary_key)
    gone = f"NOT EXISTS (SELECT 1 FROM lockgate_keys k WHERE {match})"
    cursor_rules = cursor_rules or Cursor.named(cursor)
    guard = read_up_to if cursor_rules and cursor_rules.ordinal else keys_read_at
    if cursor_rules and guard is not None:
        literal = _cursor_literal(conn, source, table, cursor_rules, guard)
        gone += f" AND {cursor_rules.duck_expr('t.')} < {literal}"
    if policy == "delete":
        count = conn.execute(f"SELECT count(*) FROM {target} t WHERE {gone}").fetchone()[0]
        conn.execute(f"DELETE FROM {target} t WHERE {gone}")
    else:
        conn.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS _lockgate_deleted_at TIMESTAMPTZ")
        count = conn.execute(
            f"SELECT count(*) FROM {target} t WHERE {gone} AND t._lockgate_deleted_at IS NULL"
        ).fetchone()[0]
        conn.execute(
            f"UPDATE {target} t SET _lockgate_deleted_at = coalesce(CAST(? AS TIMESTAMPTZ), now()) "
            f"WHERE {gone} AND _lockgate_deleted_at IS NULL",
            [keys_read_at],
        )
        # A key that came back (re-inserted in the source) is live again.
        back = f"EXISTS (SELECT 1 FROM lockgate_keys k WHERE {match})"
        conn.execute(f"UPDATE {target} t SET _lockgate_deleted_at = NULL WHERE {back} AND _lockgate_deleted_at IS NOT NULL")
    conn.execute("DROP TABLE lockgate_keys")
    if keys_read_at is not None:
        conn.execute("DELETE FROM lockgate.key_snapshots WHERE source = ? AND table_name = ?", [source, table])
        conn.execute(
            "INSERT INTO lockgate.key_snapshots (source, table_name, keys_read_at, updated_at) VALUES (?, ?, ?, ?)",
            [source, table, keys_read_at, datetime.now(UTC)],
        )
    return int(count)


def refresh_lake_view(conn, source: str, table: str, partitions: list[Partition]) -> None:
    """Point ``lake.<source>__<table>`` at the lake's current raw files, partitioned by
    interval (:mod:`lockgate.lake.catalog`): query the lake directly."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS lake")
    view = f"lake.{q(source + '__' + table)}"
    query = view_sql(partitions)
    if query is None:
        conn.execute(f"DROP VIEW IF EXISTS {view}")
        return
    conn.execute(f"CREATE OR REPLACE VIEW {view} AS {query}")


def table_fingerprint(conn, schema: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of every row's values."""
    target = f"{q(schema)}.{q(table)}"
    count, digest = conn.execute(
        f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR FROM {target} t"
    ).fetchone()
    return int(count), str(digest)
