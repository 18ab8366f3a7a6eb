"""Idempotent loads and delete propagation, the same SQL on every warehouse.

Load semantics (in the caller's transaction, so a failure leaves the table as it was):

- ``append``: warehouse rows whose cursor lies in the slice are replaced by the slice.
- ``merge``: upsert by primary key, the newest cursor wins; intervals may run in any
  order or twice and the table ends the same.
- ``full``: the table's rows are replaced by the snapshot.

The batch is first staged (:meth:`Warehouse.stage`: a view over the Parquet files in
DuckDB, an unlogged table filled by parallel ``COPY`` in PostgreSQL); the statements
below then read the staged relation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate.config import FILE_COLUMN
from lockgate.cursors import Cursor
from lockgate.errors import ConfigError
from lockgate.identifiers import sql_ident as q
from lockgate.identifiers import sql_text
from lockgate.warehouse.audit import newer_reads
from lockgate.warehouse.base import Batch, Staged, Warehouse
from lockgate.warehouse.schema import reconcile_schema, wanted_types

log = logging.getLogger("lockgate")


@dataclass(frozen=True)
class LoadRequest:
    """What to load where, and by which rule."""

    source: str
    table: str
    mode: str
    files: list[str]
    schema: list[dict]
    primary_key: list[str]
    cursor: Cursor | None
    slice_lo: datetime | int | None
    slice_hi: datetime | int | None
    full_slice: bool
    run_id: str
    version: int = 0
    read_at: datetime | None = None
    quarantine: list[tuple[str, str]] = field(default_factory=list)
    quarantine_file: str | Path | None = None
    sum_column: str | None = None
    #: A files table's ``append``: the rows of these landing files are replaced.
    replace_files: list[str] | None = None
    #: The table's ``load_parallelism`` (PostgreSQL: parallel COPY streams).
    parallel: int | None = None

    @property
    def target(self) -> str:
        return f"{q(self.source)}.{q(self.table)}"

    def batch(self) -> Batch:
        return Batch(
            files=self.files, columns=[c["name"] for c in self.schema],
            types=wanted_types(self.source, self.table, self.schema), quarantine=self.quarantine,
            quarantine_file=self.quarantine_file, sum_column=self.sum_column, source=self.source,
            table=self.table, run_id=self.run_id, parallel=self.parallel,
            primary_key=self.primary_key if self.mode == "merge" else [],
        )  # fmt: skip


def load_files(wh: Warehouse, *, cursor: str | None = None, cursor_rules: Cursor | None = None, **fields: Any) -> dict[str, Any]:
    """Load Parquet files into ``<source>.<table>`` in the caller's open transaction
    (the fields of :class:`LoadRequest`).

    ``quarantine`` is a list of ``(rule name, SQL predicate true for a breaking row)``:
    those rows are written to ``quarantine_file`` (Parquet, with the rules each broke in
    ``_lockgate_failed_rules``) and not loaded; the rest loads.

    The newest read wins: a batch read at ``read_at`` never replaces rows that a read
    made later already loaded (a replay of an older raw version, or two runs finishing
    out of order). ``append`` leaves out the cursor ranges such newer reads covered;
    ``full`` loads nothing when a newer snapshot is loaded; ``merge`` keeps the newest
    cursor per key anyway.
    """
    request = LoadRequest(cursor=cursor_rules or Cursor.named(cursor), **fields)
    wh.lock_table(request.source, request.table)
    changes = reconcile_schema(wh, request.source, request.table, request.schema, request.run_id)
    staged = wh.stage(request.batch())
    try:
        before = _count(wh, request.target)
        superseded = _apply(wh, request, staged, empty=before == 0)
        after = _count(wh, request.target)
    finally:
        wh.unstage(staged)
    return {
        "rows_staged": staged.rows,
        "rows_loaded": staged.rows - staged.quarantined - superseded,
        "rows_superseded": superseded,
        "rows_quarantined": staged.quarantined,
        "staged_sum": staged.sum,
        "rows_before": before,
        "rows_after": after,
        "schema_changes": changes,
        "parts": staged.parts,
    }


def _count(wh: Warehouse, relation: str) -> int:
    return int(wh.execute(f"SELECT count(*) FROM {relation}").fetchone()[0])


def _apply(wh: Warehouse, r: LoadRequest, staged: Staged, *, empty: bool) -> int:
    """Apply the staged rows by the table's mode; returns the rows left out as superseded."""
    stage, rows = staged.relation, staged.rows - staged.quarantined
    cols = ", ".join(q(c["name"]) for c in r.schema)
    newer = newer_reads(wh, r.source, r.table, r.run_id, r.version, r.read_at)
    if r.mode == "full" or r.full_slice and r.mode == "append" and not newer:
        if r.mode == "full" and newer:
            return rows  # a newer snapshot is loaded: keep it
        wh.execute(f"DELETE FROM {r.target}")
        wh.execute(f"INSERT INTO {r.target} ({cols}) SELECT {cols} FROM {stage}")
    elif r.mode == "append" and r.replace_files is not None:
        if r.replace_files:
            keys = ", ".join(sql_text(k) for k in r.replace_files)
            wh.execute(f"DELETE FROM {r.target} WHERE {q(FILE_COLUMN)} IN ({keys})")
        wh.execute(f"INSERT INTO {r.target} ({cols}) SELECT {cols} FROM {stage}")
    elif r.mode == "append":
        own = _range_sql(wh, r, r.slice_lo, r.slice_hi)
        taken = " OR ".join(_range_sql(wh, r, lo, hi) for lo, hi in newer)
        keep = f"NOT ({taken})" if taken else "true"
        superseded = _count(wh, f"{stage} WHERE NOT ({keep})") if taken else 0
        wh.execute(f"DELETE FROM {r.target} WHERE ({own}) AND {keep}")
        wh.execute(f"INSERT INTO {r.target} ({cols}) SELECT {cols} FROM {stage} WHERE {keep}")
        return superseded
    elif r.mode == "merge":
        _merge(wh, r, staged, empty_target=empty)
    else:
        raise ConfigError(f"{r.source}.{r.table}: unknown load mode '{r.mode}'")
    return 0


def _cursor_literal(wh: Warehouse, source: str, table: str, cursor: Cursor, value: datetime | int) -> str:
    """A bound of the cursor for the warehouse column, equal to the source's bound
    (:meth:`Cursor.duck_literal`: kinds, zones, whole days)."""
    kind = wh.columns(source, table).get(cursor.columns[0], "")
    return cursor.duck_literal(kind, value)


def _range_sql(wh: Warehouse, r: LoadRequest, lo, hi) -> str:
    """The warehouse rows of a slice: the same cursor expression and bounds as the read."""
    expr, terms = r.cursor.duck_expr(), []
    if lo is not None:
        terms.append(f"{expr} >= {_cursor_literal(wh, r.source, r.table, r.cursor, lo)}")
    if hi is not None:
        terms.append(f"{expr} < {_cursor_literal(wh, r.source, r.table, r.cursor, hi)}")
    return "(" + (" AND ".join(terms) or "true") + ")"


def _merge(wh: Warehouse, r: LoadRequest, staged: Staged, *, empty_target: bool) -> None:
    """Upsert the staged rows into the table: per key the row with the newest cursor wins.

    Each step is skipped when it cannot change anything, because on a large batch each
    costs a full pass: the batch is deduplicated only when a key repeats in it, and an
    empty target takes a plain insert. Otherwise target rows the batch supersedes are
    deleted, and the batch is inserted except for keys whose target row is newer (found
    by a join that hashes the batch, not the target). The stage counted the batch's
    distinct keys (in DuckDB, for both warehouses).
    """
    columns = [c["name"] for c in r.schema]
    cols = ", ".join(q(c) for c in columns)
    key_list = ", ".join(q(k) for k in r.primary_key)
    keys = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in r.primary_key)
    stage, rows = staged.relation, staged.rows - staged.quarantined
    distinct = staged.distinct_keys  # counted by the stage, in DuckDB
    if distinct is None:
        distinct = _count(wh, f"(SELECT DISTINCT {key_list} FROM {stage}) AS d")
    batch = stage
    if distinct < rows:
        order = f"{r.cursor.duck_expr()} DESC NULLS LAST"
        wh.temp_table(
            "lockgate_batch",
            f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY {key_list} ORDER BY {order}) "
            f"AS lockgate_n FROM {stage}) AS b WHERE lockgate_n = 1",
        )
        batch = "lockgate_batch"
    if empty_target:
        wh.execute(f"INSERT INTO {r.target} ({cols}) SELECT {cols} FROM {batch}")
    else:
        s_cursor, t_cursor = r.cursor.duck_expr("s."), r.cursor.duck_expr("t.")
        newer = f"({s_cursor} >= {t_cursor} OR {t_cursor} IS NULL)"
        wh.execute(f"DELETE FROM {r.target} t USING {batch} s WHERE {keys} AND {newer}")
        # Rows still matching a batch key are newer than the batch's: keep them.
        wh.temp_table(
            "lockgate_kept",
            f"SELECT {', '.join('t.' + q(k) for k in r.primary_key)} FROM {r.target} t JOIN {batch} s ON {keys}",
        )
        wh.execute(
            f"INSERT INTO {r.target} ({cols}) SELECT {', '.join('s.' + q(c) for c in columns)} FROM {batch} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM lockgate_kept t WHERE {keys})"
        )
        wh.execute("DROP TABLE lockgate_kept")
    if batch == "lockgate_batch":
        wh.execute("DROP TABLE lockgate_batch")


def propagate_deletes(
    wh: Warehouse,
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
    if keys_read_at is not None:
        keys_read_at = keys_read_at.astimezone(UTC) if keys_read_at.tzinfo else keys_read_at.replace(tzinfo=UTC)
        if _newer_snapshot(wh, source, table, keys_read_at):
            return 0
    staged = wh.stage(_key_batch(wh, source, table, key_files, primary_key))
    try:
        count = _apply_deletes(wh, source, table, policy, staged.relation, primary_key,
                               cursor_rules or Cursor.named(cursor), keys_read_at, read_up_to)  # fmt: skip
    finally:
        wh.unstage(staged)
    if keys_read_at is not None:
        wh.execute("DELETE FROM lockgate.key_snapshots WHERE source = ? AND table_name = ?", [source, table])
        wh.execute(
            "INSERT INTO lockgate.key_snapshots (source, table_name, keys_read_at, updated_at) VALUES (?, ?, ?, ?)",
            [source, table, keys_read_at, datetime.now(UTC)],
        )
    return count


def _key_batch(wh: Warehouse, source: str, table: str, key_files: list[str], primary_key: list[str]) -> Batch:
    types = wh.columns(source, table)
    return Batch(files=key_files, columns=list(primary_key), types={k: types[k] for k in primary_key},
                 source=source, table=f"{table}__keys")  # fmt: skip


def _newer_snapshot(wh: Warehouse, source: str, table: str, keys_read_at: datetime) -> bool:
    newer = wh.execute(
        "SELECT max(keys_read_at) FROM lockgate.key_snapshots WHERE source = ? AND table_name = ? "
        "AND keys_read_at > CAST(? AS TIMESTAMPTZ)",
        [source, table, keys_read_at],
    ).fetchone()[0]
    if newer is not None:
        log.warning(
            "%s.%s: delete propagation skipped: its key snapshot (%s) is older than the one already applied (%s)",
            source, table, keys_read_at.isoformat(), newer.isoformat() if hasattr(newer, "isoformat") else newer,
        )  # fmt: skip
    return newer is not None


def _apply_deletes(wh, source, table, policy, keys, primary_key, cursor, keys_read_at, read_up_to) -> int:
    target = f"{q(source)}.{q(table)}"
    match = " AND ".join(f"k.{q(c)} = t.{q(c)}" for c in primary_key)
    gone = f"NOT EXISTS (SELECT 1 FROM {keys} k WHERE {match})"
    guard = read_up_to if cursor and cursor.ordinal else keys_read_at
    if cursor and guard is not None:
        gone += f" AND {cursor.duck_expr('t.')} < {_cursor_literal(wh, source, table, cursor, guard)}"
    if policy == "delete":
        count = wh.execute(f"SELECT count(*) FROM {target} t WHERE {gone}").fetchone()[0]
        wh.execute(f"DELETE FROM {target} t WHERE {gone}")
        return int(count)
    if "_lockgate_deleted_at" not in wh.columns(source, table):
        wh.execute(f"ALTER TABLE {target} ADD COLUMN _lockgate_deleted_at TIMESTAMPTZ")
    count = wh.execute(f"SELECT count(*) FROM {target} t WHERE {gone} AND t._lockgate_deleted_at IS NULL").fetchone()[0]
    wh.execute(
        f"UPDATE {target} t SET _lockgate_deleted_at = coalesce(CAST(? AS TIMESTAMPTZ), now()) "
        f"WHERE {gone} AND _lockgate_deleted_at IS NULL",
        [keys_read_at],
    )
    # A key that came back (re-inserted in the source) is live again.
    back = f"EXISTS (SELECT 1 FROM {keys} k WHERE {match})"
    wh.execute(f"UPDATE {target} t SET _lockgate_deleted_at = NULL WHERE {back} AND _lockgate_deleted_at IS NOT NULL")
    return int(count)
