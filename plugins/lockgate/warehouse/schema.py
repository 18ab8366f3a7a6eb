"""Schema drift, checked before anything is written: a new source column is added
(nullable) and recorded in ``lockgate.schema_history``; a changed type or a dropped
column raises :class:`~lockgate.errors.SchemaDriftError`. Types are compared in the
DuckDB vocabulary of :mod:`lockgate.typemap`, as each warehouse reports them."""

from __future__ import annotations

from datetime import UTC, datetime

from lockgate.errors import SchemaDriftError
from lockgate.identifiers import sql_ident as q
from lockgate.typemap import warehouse_type
from lockgate.warehouse.base import Warehouse


def wanted_types(source: str, table: str, manifest_schema: list[dict]) -> dict[str, str]:
    """The batch's columns as warehouse (DuckDB vocabulary) types."""
    where = f"{source}.{table}"
    return {col["name"]: warehouse_type(col["type"], where=where, column=col["name"]) for col in manifest_schema}


def table_columns(wh: Warehouse, schema: str, table: str) -> dict[str, str]:
    return wh.columns(schema, table)


def reconcile_schema(wh: Warehouse, source: str, table: str, manifest_schema: list[dict], run_id: str) -> list[str]:
    """Create the table or follow additive drift; refuse destructive drift.

    Returns the changes made (``added <col> <type>``)."""
    wanted = wanted_types(source, table, manifest_schema)
    wh.ensure_schema(source)
    existing = wh.columns(source, table)
    if not existing:
        columns = ", ".join(f"{q(name)} {wh.native_type(dtype)}" for name, dtype in wanted.items())
        wh.execute(f"CREATE TABLE {q(source)}.{q(table)} ({columns})")
        return [f"created {table}"]
    _refuse_drift(wh, source, table, existing, wanted)
    changes = []
    now = datetime.now(UTC)
    for name, dtype in wanted.items():
        if name not in existing:
            wh.execute(f"ALTER TABLE {q(source)}.{q(table)} ADD COLUMN {q(name)} {wh.native_type(dtype)}")
            wh.execute(
                "INSERT INTO lockgate.schema_history VALUES (?, ?, ?, 'added', NULL, ?, ?, ?)",
                [source, table, name, dtype, run_id, now],
            )
            changes.append(f"added {name} {dtype}")
    return changes


def check_schema(wh: Warehouse, source: str, table: str, manifest_schema: list[dict]) -> None:
    """Raise :class:`SchemaDriftError` if the batch cannot be loaded without loss
    (a column dropped or retyped in the source). Read-only; new columns are fine."""
    existing = wh.columns(source, table)
    if existing:
        _refuse_drift(wh, source, table, existing, wanted_types(source, table, manifest_schema))


def _refuse_drift(wh: Warehouse, source: str, table: str, existing: dict[str, str], wanted: dict[str, str]) -> None:
    problems = []
    for name, old_type in existing.items():
        if name.startswith("_lockgate_"):
            continue
        new_type = wh.comparable(wanted[name]) if name in wanted else None
        if new_type is None:
            problems.append(f"column '{name}' was dropped in the source (old type {old_type}, new type: none)")
        elif new_type != old_type:
            problems.append(f"column '{name}' changed type from {old_type} to {new_type}")
    if problems:
        raise SchemaDriftError(
            f"{source}.{table}: schema changed in the source; nothing was loaded: " + "; ".join(problems)
        )
