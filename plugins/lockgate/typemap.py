"""The type matrix: how each source column is read, and what it becomes in the warehouse.

Three steps, all decided before a row is read (``spark_jobs.extract`` runs them when it
plans an extract):

1. :func:`column_reads` turns the source's declared column types (from its catalog)
   into one :class:`ColumnRead` per column: the SQL expression pushed to the source
   (a cast where the driver would otherwise misread a type, a salted hash for
   ``hash_columns``), an optional Spark type for JDBC's ``customSchema``, and a
   *guard* — an SQL predicate true for a value the chosen type cannot hold exactly
   (a zero date, text in an SQLite INTEGER column, a numeric with more digits than
   DECIMAL(38) has).
2. :func:`warehouse_type` maps the Spark type the reader gives a column to the DuckDB
   type; a type without a mapping raises :class:`TypeMappingError` naming source, table,
   column and type.
3. The guards run as one query over the slice; a value that would arrive changed
   raises :class:`TypeMappingError` with the count and an example.

The README's "Type mapping" section is the user-facing form of these rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lockgate import identifiers
from lockgate.errors import ConfigError, TypeMappingError

#: Marks the salt in stored SQL: the salt itself is put in only when a query is sent.
SALT_TOKEN = "__LOCKGATE_HASH_SALT__"
#: Airflow Variable holding the salt of ``hash_columns`` (``AIRFLOW_VAR_LOCKGATE_HASH_SALT``).
SALT_VARIABLE = "lockgate_hash_salt"
MIN_SALT_CHARS = 16
#: Unconstrained numeric (PostgreSQL ``numeric``, SQLite ``NUMERIC``) is DECIMAL(38,18).
FREE_NUMERIC = (38, 18)

_SIMPLE = {
    "bigint": "BIGINT",
    "int": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "double": "DOUBLE",
    "float": "FLOAT",
    "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "timestamp_ntz": "TIMESTAMP",
    "binary": "BLOB",
}


def duckdb_type(spark_type: str) -> str | None:
    """The DuckDB type a Spark ``simpleString`` type loads as from Parquet, or ``None``.

    Arrays of any supported type become DuckDB lists (``array<string>`` → ``VARCHAR[]``)."""
    t = spark_type.lower().strip()
    if t in _SIMPLE:
        return _SIMPLE[t]
    match = re.fullmatch(r"decimal\((\d+),(\d+)\)", t)
    if match:
        return f"DECIMAL({match.group(1)},{match.group(2)})"
    if re.fullmatch(r"(var)?char\(\d+\)", t):
        return "VARCHAR"
    match = re.fullmatch(r"array<(.+)>", t)
    if match:
        element = duckdb_type(match.group(1))
        return f"{element}[]" if element else None
    return None


def warehouse_type(spark_type: str, *, where: str, column: str, native: str | None = None) -> str:
    """:func:`duckdb_type`, or a :class:`TypeMappingError` naming ``where`` (``source.table``)
    and the column."""
    mapped = duckdb_type(spark_type)
    if mapped is None:
        source, _, table = where.partition(".")
        declared = f"{native}, " if native else ""
        raise TypeMappingError(
            f"source '{source}', table '{table}': column '{column}' ({declared}read as {spark_type}) has no "
            "warehouse mapping; exclude it (exclude_columns) or cast it in a source view "
            "(see the README's Type mapping)"
        )
    return mapped


def spark_name(name: str) -> str:
    """A column name in Spark SQL (``customSchema``, ``F.col``): in backticks, doubled inside."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class SourceColumn:
    """A column as the source's catalog declares it."""

    name: str
    native: str  # the declared type (a PostgreSQL domain is given as its base type)


@dataclass(frozen=True)
class ColumnRead:
    """How one column is read: the SELECT expression, a JDBC ``customSchema`` type, a
    guard predicate (true for a value the reading cannot keep exactly) and its reason."""

    name: str
    native: str
    expression: str | None = None  # None: the column itself
    spark: str | None = None
    guard: str | None = None
    reason: str = ""
    hashed_in_spark: bool = False


@dataclass(frozen=True)
class Selection:
    """The table's column selection: which source columns are read, which are hashed."""

    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    hashed: tuple[str, ...] = ()


Quote = Callable[[str], str]


def select_columns(columns: list[SourceColumn], selection: Selection, where: str) -> list[SourceColumn]:
    """The columns to read, in source order; names the selection gives that the source
    does not have are a :class:`ConfigError` naming each."""
    known = {c.name for c in columns}
    named = [*(selection.include or ()), *selection.exclude, *selection.hashed]
    unknown = sorted({n for n in named if n not in known})
    if unknown:
        source, _, table = where.partition(".")
        raise ConfigError(
            f"source '{source}', table '{table}': "
            + ", ".join(f"column '{n}'" for n in unknown)
            + f" named in columns/exclude_columns/hash_columns does not exist in the source (it has: {', '.join(sorted(known))})"
        )
    keep = [c for c in columns if c.name not in selection.exclude]
    if selection.include is not None:
        keep = [c for c in keep if c.name in selection.include]
    check_warehouse_names([c.name for c in keep], where)
    return keep


def check_warehouse_names(names: list[str], where: str) -> None:
    """The columns read keep their names in the warehouse: two names equal but for case
    (one DuckDB column) or a name Lockgate uses itself are a :class:`ConfigError`."""
    source, _, table = where.partition(".")
    pairs = identifiers.collisions(names)
    if pairs:
        raise ConfigError(f"source '{source}', table '{table}': {identifiers.collision_message(pairs)}")
    own = [n for n in names if n.casefold().startswith(identifiers.RESERVED_PREFIX)]
    if own:
        raise ConfigError(
            f"source '{source}', table '{table}': column '{own[0]}' starts with '{identifiers.RESERVED_PREFIX}', "
            "which Lockgate's own warehouse columns use; exclude it or rename it in a source view"
        )


# --- per-engine rules ------------------------------------------------------------------
def _numeric_guard(column: str, scale: int, integer_digits: int, engine: str) -> str:
    limit = "1" + "0" * integer_digits  # an exact literal (1e20 is a double on MariaDB)
    return f"({column} <> ROUND({column}, {scale}) OR ABS({column}) >= {limit})"


def _wide_decimal(col: SourceColumn, q: str, engine: str) -> ColumnRead | None:
    """DECIMAL/NUMERIC(p,s) with p > 38 is DECIMAL(38, s): kept while the values fit."""
    match = re.fullmatch(r"(?:numeric|decimal)\((\d+),\s*(\d+)\)(?: unsigned)?", col.native.lower())
    if not match or int(match.group(1)) <= 38:
        return None
    scale = min(int(match.group(2)), 38)
    return ColumnRead(
        col.name, col.native, spark=f"DECIMAL(38,{scale})", guard=_numeric_guard(q, scale, 38 - scale, engine),
        reason=f"{col.native} is read as DECIMAL(38,{scale}): more than {38 - scale} integer digits do not fit",
    )  # fmt: skip


def postgres_read(col: SourceColumn, quote: Quote) -> ColumnRead:
    q, t = quote(col.name), col.native.lower()
    if t == "numeric":
        p, s = FREE_NUMERIC
        return ColumnRead(
            col.name, t, guard=_numeric_guard(q, s, p - s, "postgres"),
            reason=f"numeric without a scale is read as DECIMAL({p},{s}): more than {s} fractional or {p - s} "
            "integer digits (or NaN/Infinity) would not be kept; declare numeric(p,s) with p <= 38",
        )  # fmt: skip
    wide = _wide_decimal(col, q, "postgres")
    if wide:
        return wide
    if t == "money":  # locale-formatted text ('$12.34') otherwise; int64 minor units fit
        return ColumnRead(col.name, t, expression=f"CAST({q} AS NUMERIC(23,4))")
    if t.startswith(("time", "bit")) and not t.startswith("timestamp"):
        # time/timetz would become a timestamp on 1970-01-01; bit(n) the bytes of its text
        return ColumnRead(col.name, t, expression=f"CAST({q} AS TEXT)")
    return ColumnRead(col.name, t)


def mariadb_read(col: SourceColumn, quote: Quote) -> ColumnRead:
    q, t = quote(col.name), col.native.lower()
    if t.startswith("tinyint(1)"):
        return ColumnRead(
            col.name, t, guard=f"{q} NOT IN (0, 1)",
            reason="TINYINT(1) is read as BOOLEAN: values other than 0 and 1 would become true; "
            'set jdbc_properties {"tinyInt1isBit": "false"} on the connection to read it as a number',
        )  # fmt: skip
    match = re.fullmatch(r"bit\((\d+)\)", t)
    if match and int(match.group(1)) > 1:  # the driver hands BIT(n) over as bytes of its own
        kind = "UNSIGNED" if int(match.group(1)) == 64 else "SIGNED"
        return ColumnRead(col.name, t, expression=f"CAST({q} AS {kind})")
    if t.startswith("time") and not t.startswith("timestamp"):  # -838:59:59..838:59:59, not a time of day
        return ColumnRead(col.name, t, expression=f"CAST({q} AS CHAR)")
    if t.startswith(("date", "timestamp")):
        return ColumnRead(
            col.name, t, guard=f"(MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0)",
            reason="a zero date (0000-00-00 or a zero month/day) would be read as NULL; "
            "set it to NULL or a real date in the source",
        )  # fmt: skip
    return _wide_decimal(col, q, "mariadb") or ColumnRead(col.name, t)


# SQLite stores declared types as free text and values with type affinity. Spark's generic
# JDBC mapping would read INTEGER as a 32-bit int and timestamps as strings; these rules
# give every declared type a lossless Spark type: read directly (customSchema) or as text
# and cast strictly. Guards catch values whose storage class the reading would misread
# (xerial returns 0 for getLong on 'five').
_SQLITE_RULES: list[tuple[str, str, str | None, str | None]] = [
    # (regex on the declared type, customSchema type, cast after reading, storage classes allowed)
    (r"BOOL", "BOOLEAN", None, "integer"),
    (r"INT", "BIGINT", None, "integer"),
    (r"(NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", "STRING", "decimal({p},{s})", None),
    (r"(NUMERIC|DECIMAL)", "STRING", "decimal(38,10)", None),
    (r"REAL|FLOA|DOUB", "DOUBLE", None, "real', 'integer"),
    (r"DATETIME|TIMESTAMP", "STRING", "timestamp_ntz", None),
    (r"DATE", "STRING", "date", None),
    (r"BLOB", "BINARY", None, None),
]


def sqlite_read(col: SourceColumn, quote: Quote) -> tuple[ColumnRead, str | None]:
    """The column's read and its post-read cast (SQLite)."""
    upper, q = col.native.upper(), quote(col.name)
    for pattern, spark_type, cast, classes in _SQLITE_RULES:
        match = re.search(pattern, upper)
        if match:
            if cast and "{p}" in cast:
                cast = cast.format(p=match.group(2), s=match.group(3))
            guard = f"typeof({q}) NOT IN ('{classes}', 'null')" if classes else None
            if pattern == "BOOL":
                guard = f"({guard} OR {q} NOT IN (0, 1))"
            if cast and cast.startswith("decimal("):  # the cast would round extra fractional digits
                scale = int(cast.split(",")[1].rstrip(")"))
                text = f"CAST({q} AS TEXT)"
                guard = f"(instr({text}, '.') > 0 AND length({text}) - instr({text}, '.') > {scale})"
            reason = f"{col.native} is read as {spark_type}: a value stored as another type would be misread"
            return ColumnRead(col.name, col.native, spark=spark_type, guard=guard, reason=reason), cast
    return ColumnRead(col.name, col.native, spark="STRING"), None


def hash_expression(engine: str, quoted: str) -> str | None:
    """SHA-256 hex of salt || the value's text, computed by the source (``None``: SQLite
    has no SHA-256; Spark hashes right after reading, before anything is written)."""
    if engine == "postgres":
        return f"encode(sha256(convert_to({SALT_TOKEN} || CAST({quoted} AS TEXT), 'UTF8')), 'hex')"
    if engine == "mariadb":
        return f"SHA2(CONCAT({SALT_TOKEN}, CAST({quoted} AS CHAR)), 256)"
    return None


@dataclass(frozen=True)
class ReadPlan:
    """How a table is read: one :class:`ColumnRead` per selected column, plus SQLite's casts."""

    columns: tuple[ColumnRead, ...]
    casts: tuple[tuple[str, str], ...] = ()

    def select_list(self, quote: Quote) -> str:
        return ", ".join(
            f"{c.expression} AS {quote(c.name)}" if c.expression else quote(c.name) for c in self.columns
        )

    def custom_schema(self) -> str | None:
        items = [f"{spark_name(c.name)} {c.spark}" for c in self.columns if c.spark]
        return ", ".join(items) or None

    def spark_hashed(self) -> list[str]:
        return [c.name for c in self.columns if c.hashed_in_spark]

    def guarded(self) -> list[ColumnRead]:
        return [c for c in self.columns if c.guard]


def column_reads(engine: str, columns: list[SourceColumn], hashed: tuple[str, ...], quote: Quote) -> ReadPlan:
    """The read of every column (already selected) of an ``engine`` table."""
    reads, casts = [], []
    for col in columns:
        if col.name in hashed:
            expression = hash_expression(engine, quote(col.name))
            read = ColumnRead(col.name, col.native, expression=expression, spark="STRING" if engine == "sqlite" else None,
                              hashed_in_spark=expression is None)  # fmt: skip
        elif engine == "postgres":
            read = postgres_read(col, quote)
        elif engine == "mariadb":
            read = mariadb_read(col, quote)
        else:
            read, cast = sqlite_read(col, quote)
            if cast:
                casts.append((col.name, cast))
        reads.append(read)
    return ReadPlan(tuple(reads), tuple(casts))


def catalog_query(engine: str, relation: str, schema: str | None, table: str) -> str:
    """SQL listing ``(name, type)`` of a table's columns in order, from the source's catalog."""
    lit = table.replace("'", "''")
    if engine == "postgres":
        rel = relation.replace("'", "''")
        return (
            "SELECT a.attname AS name, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) "
            "ELSE format_type(a.atttypid, a.atttypmod) END AS type FROM pg_attribute a "
            f"JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass('{rel}') AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum"
        )
    if engine == "mariadb":
        owner = f"'{schema.replace(chr(39), chr(39) * 2)}'" if schema else "DATABASE()"
        return (
            "SELECT column_name AS name, column_type AS type FROM information_schema.columns "
            f"WHERE table_schema = {owner} AND table_name = '{lit}' ORDER BY ordinal_position"
        )
    owner = f", '{schema.replace(chr(39), chr(39) * 2)}'" if schema else ""
    return f"SELECT name, type FROM pragma_table_info('{lit}'{owner})"


def guard_query(plan: ReadPlan, relation: str, predicate: str, engine: str, quote: Quote) -> tuple[str, list[str]] | None:
    """One query counting, per guarded column, the slice's values the reading would
    change, with one example (as text); ``None`` when no column is guarded."""
    guarded = plan.guarded()
    if not guarded:
        return None
    text = "CHAR" if engine == "mariadb" else "TEXT"
    items, names = [], []
    for i, col in enumerate(guarded):
        items.append(f"CAST(SUM(CASE WHEN {col.guard} THEN 1 ELSE 0 END) AS {text}) AS n{i}")
        items.append(f"MIN(CASE WHEN {col.guard} THEN CAST({quote(col.name)} AS {text}) END) AS e{i}")
        names += [f"n{i}", f"e{i}"]
    return f"SELECT {', '.join(items)} FROM {relation} WHERE {predicate}", names


def guard_problems(plan: ReadPlan, row: dict[str, str | None]) -> list[str]:
    """The guard query's answer as one sentence per column with values that would change."""
    problems = []
    for i, col in enumerate(plan.guarded()):
        count = int(row.get(f"n{i}") or 0)
        if count:
            plural = "row" if count == 1 else "rows"
            problems.append(
                f"column '{col.name}' ({col.native}): {count} {plural} with a value the warehouse cannot hold "
                f"exactly, e.g. {row.get(f'e{i}')!r}: {col.reason}"
            )
    return problems
