"""Pure DataFrame → DataFrame transforms used by the extract job.

No I/O and no session building here, so each function is tested on small golden
inputs with a local session.
"""

from __future__ import annotations

from lockgate.typemap import spark_name
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def apply_casts(df: DataFrame, casts: dict[str, str]) -> DataFrame:
    """Cast text columns to their declared temporal types; bad values fail loudly.

    ``try_cast`` would turn an unparseable timestamp into NULL and lose it silently, so
    the cast is strict (ANSI mode raises on a value that is not a timestamp).
    """
    if not casts:
        return df
    return df.select(
        *[_cast(F.col(spark_name(name)), casts[name]).alias(name) if name in casts else F.col(spark_name(name)) for name in df.columns]
    )


def _cast(column, target: str):
    """Text → ``target``. A timestamp text with an offset (``…+02:00``, ``…Z``) is read
    as that instant, in UTC (the session's zone), as SQLite's ``datetime()`` compares it
    in a slice predicate; a text without one is kept as written."""
    if target == "timestamp_ntz":
        return column.cast("timestamp").cast("timestamp_ntz")
    return column.cast(target)
