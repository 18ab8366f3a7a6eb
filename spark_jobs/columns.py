"""Which columns an extract reads, and how, decided before a row is read.

:func:`prepare_read` asks the source's catalog for the table's declared column types,
applies the table's column selection (``columns``/``exclude_columns``/``hash_columns``),
builds the SELECT list pushed to the source (:mod:`lockgate.typemap`), checks that
every resulting column has a warehouse mapping and that no value in the slice would
arrive changed, and fails with a :class:`~lockgate.errors.TypeMappingError` (or a
:class:`~lockgate.errors.ConfigError` for an unknown column) otherwise. Excluded
columns are never selected and hashed ones are hashed by the source, so neither
reaches Spark, the lake, the quality reports or the warehouse (SQLite has no SHA-256:
there Spark hashes the value right after reading it, before anything is written).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lockgate import redact, typemap
from lockgate.config import TableConfig
from lockgate.errors import ConfigError, SourceError, TypeMappingError
from lockgate.sources import JdbcSource

Query = Callable[[str, list[str]], list[dict[str, Any]]]


@dataclass(frozen=True)
class ReadSetup:
    """What the plan of an extract stores about its columns (the salt is never in it)."""

    select: str  # the SELECT list, with :data:`typemap.SALT_TOKEN` for the salt
    custom_schema: str | None
    casts: dict[str, str] = field(default_factory=dict)
    spark_hashed: list[str] = field(default_factory=list)


def hash_salt() -> str:
    """The salt of ``hash_columns``: the Airflow Variable ``lockgate_hash_salt`` (for local
    runs ``AIRFLOW_VAR_LOCKGATE_HASH_SALT``). Registered with the log masker at once."""
    value = os.environ.get(f"AIRFLOW_VAR_{typemap.SALT_VARIABLE.upper()}")
    if value is None:
        try:
            from airflow.sdk import Variable

            value = Variable.get(typemap.SALT_VARIABLE, default=None)
        except Exception:  # noqa: BLE001 - no Airflow context: treated as not set
            value = None
    if not value or len(value) < typemap.MIN_SALT_CHARS:
        raise ConfigError(
            f"hash_columns needs a salt of at least {typemap.MIN_SALT_CHARS} characters in the Airflow Variable "
            f"'{typemap.SALT_VARIABLE}' (or the environment variable AIRFLOW_VAR_{typemap.SALT_VARIABLE.upper()})"
        )
    redact.register(value)
    return value


def with_salt(sql: str, engine: str) -> str:
    """``sql`` with the salt in place of its token (a no-op without one)."""
    if typemap.SALT_TOKEN not in sql:
        return sql
    salt = hash_salt().replace("'", "''")
    if engine == "mariadb":
        salt = salt.replace("\\", "\\\\")
    return sql.replace(typemap.SALT_TOKEN, f"'{salt}'")


def relation(source: JdbcSource, table: TableConfig, select: str | None) -> str:
    """The table as the readers see it: its selected, cast and hashed columns."""
    base = source.table_ref(table.source_name)
    if not select:
        return base
    return f"(SELECT {with_salt(select, source.engine)} FROM {base}) lockgate_cols"


def source_columns(query: Query, source: JdbcSource, table: TableConfig) -> list[typemap.SourceColumn]:
    *schema, name = table.source_parts
    sql = typemap.catalog_query(source.engine, source.table_ref(table.source_name), schema[0] if schema else None, name)
    rows = query(sql, ["name", "type"])
    if not rows:
        raise SourceError(f"source {source.describe()}: table '{table.source_name}' does not exist")
    return [typemap.SourceColumn(r["name"], (r["type"] or "").strip()) for r in rows]


def _spark_types(spark, source: JdbcSource, table: TableConfig, setup: ReadSetup) -> dict[str, str]:
    """The Spark type of each selected column as the readers will write it (Spark asks
    the source with ``WHERE 1=0``: no row is read)."""
    options = {**source.jdbc_options(), "dbtable": f"(SELECT * FROM {relation(source, table, setup.select)} WHERE 1=0) s",
               "preferTimestampNTZ": "true"}  # fmt: skip
    if setup.custom_schema:
        options["customSchema"] = setup.custom_schema
    schema = spark.read.format("jdbc").options(**options).load().schema
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    types.update(setup.casts)
    types.update({name: "string" for name in setup.spark_hashed})
    return types


def _check_mappings(where: str, native: dict[str, str], types: dict[str, str]) -> None:
    problems = []
    for name, spark_type in types.items():
        try:
            typemap.warehouse_type(spark_type, where=where, column=name, native=native.get(name))
        except TypeMappingError as exc:
            problems.append(str(exc).split(": ", 1)[1])
    if problems:
        source, _, table = where.partition(".")
        raise TypeMappingError(f"source '{source}', table '{table}': " + "; ".join(problems) + "; nothing was read")


def _check_values(query: Query, source: JdbcSource, table: TableConfig, plan: typemap.ReadPlan, predicate: str,
                  where: str) -> None:  # fmt: skip
    guard = typemap.guard_query(plan, source.table_ref(table.source_name), predicate, source.engine, source.quote)
    if guard is None:
        return
    problems = typemap.guard_problems(plan, query(*guard)[0])
    if problems:
        src, _, name = where.partition(".")
        raise TypeMappingError(
            f"source '{src}', table '{name}': " + "; ".join(problems) + "; nothing was read (fix the values in the "
            "source, or exclude the column)"
        )


def prepare_read(spark, query: Query, source: JdbcSource, table: TableConfig, predicate: str, where: str) -> ReadSetup:
    """Plan the table's columns and fail before reading anything that would not arrive
    exactly (``where`` is ``<source>.<table>`` for messages)."""
    spark.conf.set("spark.sql.readSideCharPadding", "false")  # see lockgate.spark.spark_conf
    selection = typemap.Selection(
        tuple(table.columns) if table.columns is not None else None, tuple(table.exclude_columns), tuple(table.hash_columns)
    )  # fmt: skip
    columns = typemap.select_columns(source_columns(query, source, table), selection, where)
    plan = typemap.column_reads(source.engine, columns, selection.hashed, source.quote)
    setup = ReadSetup(plan.select_list(source.quote), plan.custom_schema(), dict(plan.casts), plan.spark_hashed())
    _check_mappings(where, {c.name: c.native for c in columns}, _spark_types(spark, source, table, setup))
    _check_values(query, source, table, plan, predicate, where)
    return setup


def hash_in_spark(df, columns: list[str]):
    """SQLite's ``hash_columns``: SHA-256 hex of salt || text, as the other engines compute it."""
    if not columns:
        return df
    from pyspark.sql import functions as F

    salt = F.lit(hash_salt())
    return df.select(
        *[
            F.sha2(F.concat(salt, F.col(typemap.spark_name(n)).cast("string")), 256).alias(n) if n in columns else F.col(typemap.spark_name(n))
            for n in df.columns
        ]
    )
