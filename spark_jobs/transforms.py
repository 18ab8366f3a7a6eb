"""Pure DataFrame → DataFrame transforms used by the extract job.

No I/O and no session building here, so each function is tested on small golden
inputs with a local session.
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# SQLite stores declared types as free text and values with type affinity. Spark's
# generic JDBC mapping would read INTEGER as a 32-bit int (silently truncating 64-bit
# values) and timestamps as strings. These rules give every declared type a lossless
# Spark type: either read directly (customSchema) or read as text and cast.
_SQLITE_RULES: list[tuple[str, str, str | None]] = [
    # (regex on the declared type, customSchema type, cast after reading)
    (r"BOOL", "BOOLEAN", None),
    (r"INT", "BIGINT", None),
    # xerial's getBigDecimal fails on values stored with INTEGER or REAL affinity, so
    # decimals are read as their exact text and cast in Spark.
    (r"(NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", "STRING", "decimal({p},{s})"),
    (r"(NUMERIC|DECIMAL)", "STRING", "decimal(38,10)"),
    (r"REAL|FLOA|DOUB", "DOUBLE", None),
    (r"DATETIME|TIMESTAMP", "STRING", "timestamp_ntz"),
    (r"DATE", "STRING", "date"),
    (r"BLOB", "BINARY", None),
]


def sqlite_type_plan(declared: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """customSchema string and post-read casts for SQLite columns.

    Args:
        declared: ``(column, declared type)`` pairs as ``pragma_table_info`` returns them.

    Returns:
        ``(custom_schema, casts)`` where casts maps a column to a Spark SQL type.
    """
    schema: list[str] = []
    casts: dict[str, str] = {}
    for column, declared_type in declared:
        upper = (declared_type or "").upper()
        spark_type, cast = "STRING", None
        for pattern, target, post in _SQLITE_RULES:
            match = re.search(pattern, upper)
            if match:
                spark_type, cast = target, post
                if cast and "{p}" in cast:
                    cast = cast.format(p=match.group(2), s=match.group(3))
                break
        schema.append(f"`{column}` {spark_type}")
        if cast:
            casts[column] = cast
    return ", ".join(schema), casts


def apply_casts(df: DataFrame, casts: dict[str, str]) -> DataFrame:
    """Cast text columns to their declared temporal types; bad values fail loudly.

    ``try_cast`` would turn an unparseable timestamp into NULL and lose it silently, so
    the cast is strict (ANSI mode raises on a value that is not a timestamp).
    """
    if not casts:
        return df
    return df.select(
        *[_cast(F.col(f"`{name}`"), casts[name]).alias(name) if name in casts else F.col(f"`{name}`") for name in df.columns]
    )


def _cast(column, target: str):
    """Text → ``target``. A timestamp text with an offset (``…+02:00``, ``…Z``) is read
    as that instant, in UTC (the session's zone), as SQLite's ``datetime()`` compares it
    in a slice predicate; a text without one is kept as written."""
    if target == "timestamp_ntz":
        return column.cast("timestamp").cast("timestamp_ntz")
    return column.cast(target)
