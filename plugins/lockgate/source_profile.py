"""What a source table declares and what its data shows, read natively per engine.

:func:`profile_table` asks the source (``sqlite3``, ``psycopg`` or ``pymysql``; no
Spark) for, in this order:

1. the catalog: each column's declared type and nullability, identity/serial/
   auto_increment, enum values, the primary key, UNIQUE constraints and indexes, and
   foreign keys (:func:`read_catalog`);
2. whole-table aggregates in one scan: the row count, each column's non-NULL count and
   the MIN/MAX of the numeric columns a range may be proposed for;
3. the distinct values of the text columns a value set may be proposed for: a declared
   ENUM's values, else PostgreSQL's ``pg_stats`` of a recently analysed table, else a
   bounded ``SELECT DISTINCT ... LIMIT max_set + 1`` over the whole table;
4. a sample spread over the whole table (PostgreSQL ``TABLESAMPLE BERNOULLI``, MariaDB
   ``RAND(seed)``, SQLite ``random()``), ordered by the key, whose older and newer halves
   tell whether a numeric column grows with the table and whether it has a ceiling.

The result is a :class:`TableProfile` of :class:`ColumnProfile` records, named as the
batch names the columns: the table config's column selection is applied as the
extract applies it, and ``hash_columns`` are marked (their values are never read).
The connection's password is never printed: errors are masked.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from lockgate import cursors, redact, typemap
from lockgate.config import TableConfig
from lockgate.errors import SourceError
from lockgate.sources import JdbcSource

Kind = Literal["integer", "decimal", "float", "text", "bool", "time", "other"]
NUMERIC_KINDS = ("integer", "decimal", "float")
#: Integer columns named like identifiers: ``id``, ``*_id``, ``*_key``, ``CustomerId``.
ID_NAME = re.compile(r"(?i:(^|_)(id|key)$)|[a-z0-9](Id|ID|Key)$")
#: ``pg_stats`` is trusted while fewer rows than this share changed since ANALYZE.
STALE_STATS = 0.1
SAMPLE_SEED = 42


@dataclass(frozen=True)
class Distinct:
    """What is known of a column's distinct values over the whole table."""

    source: str  # "declared enum", "pg_stats", "whole table"
    values: tuple[str, ...] | None  # every value, when there are few
    count: float | None = None  # how many (an estimate from pg_stats), when not listed

    def describe(self, max_set: int) -> str:
        if self.values is not None:
            return f"{len(self.values)} values ({self.source})"
        if self.count is not None:
            return f"~{self.count:,.0f} values ({self.source})"
        return f"more than {max_set} values ({self.source})"


@dataclass(frozen=True)
class Halves:
    """A numeric column's values in a sample ordered by the key, split in two."""

    older: tuple[Any, ...]
    newer: tuple[Any, ...]

    @classmethod
    def split(cls, values: list[Any]) -> Halves:
        middle = len(values) // 2
        return cls(tuple(values[:middle]), tuple(values[middle:]))

    def moves(self) -> str | None:
        """``grows`` (or ``falls``) when the newer half's values go beyond the older
        half's: at least 5% of them (and 10) above its maximum (below its minimum). In
        random order a value or two lands there (10 with odds of 1 in 1,000); from a
        sequence, a counter or a rising price, most do."""
        if not self.older or not self.newer:
            return None
        enough, top, bottom = max(10, 0.05 * len(self.newer)), max(self.older), min(self.older)
        if sum(1 for v in self.newer if v > top) >= enough:
            return "grows"
        if sum(1 for v in self.newer if v < bottom) >= enough:
            return "falls"
        return None

    def repeated(self, value: Any) -> bool:
        """Is ``value`` reached again and again in both halves (at least 3 times and
        0.5% of the values in each)? A cap is; the end of a long tail is not."""
        return all(
            half and sum(1 for v in half if v == value) >= max(3, 0.005 * len(half)) for half in (self.older, self.newer)
        )


@dataclass
class ColumnProfile:
    """One column as the batch names it, with what the catalog and the data say."""

    name: str
    native: str  # the declared type
    kind: Kind
    nullable: bool = True  # as declared (SQLite's INTEGER PRIMARY KEY is never NULL)
    primary_key: bool = False  # part of the catalog's primary key
    unique: bool = False  # alone unique: a single-column PRIMARY KEY/UNIQUE constraint or index
    foreign_key: bool = False
    sequence: bool = False  # identity, serial, auto_increment, SQLite's rowid alias
    hashed: bool = False  # in hash_columns: the batch holds a hash, never the value
    enum_values: tuple[str, ...] | None = None
    non_null: int | None = None  # whole table
    minimum: Any = None  # whole table, numeric columns a range may be proposed for
    maximum: Any = None
    distinct: Distinct | None = None
    halves: Halves | None = None

    @property
    def id_like(self) -> bool:
        return self.kind == "integer" and bool(ID_NAME.search(self.name))


@dataclass(frozen=True)
class Sample:
    """How the rows behind :attr:`ColumnProfile.halves` were chosen."""

    rows: int
    method: str
    order_by: str | None


@dataclass
class TableProfile:
    """A source table: its batch columns, keys and what was read to profile it."""

    engine: str
    table: str  # as the table config names it in the source
    rows: int
    columns: list[ColumnProfile]
    primary_key: tuple[str, ...] = ()  # the catalog's
    unique_sets: list[tuple[str, ...]] = field(default_factory=list)  # catalog UNIQUE, several columns
    sample: Sample | None = None

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)


@dataclass
class Catalog:
    """What the source's catalog declares about a table (every column, selected or not)."""

    columns: list[ColumnProfile]
    primary_key: tuple[str, ...]
    unique_sets: list[tuple[str, ...]]
    foreign_keys: set[str]


# --- connecting ------------------------------------------------------------------------
class Db:
    """One native connection: ``rows(sql, params)`` with ``%s`` placeholders everywhere
    (a query without parameters is sent as it is: a name may hold a ``%``)."""

    def __init__(self, conn: Any, source: JdbcSource) -> None:
        self.conn, self.source = conn, source

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.source.engine == "sqlite":
            return self.conn.execute(sql.replace("%s", "?") if params else sql, params).fetchall()
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params or None)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def quote(self, name: str) -> str:
        return self.source.quote(name)


@contextmanager
def connect(source: JdbcSource, table: str) -> Iterator[Db]:
    """A read-only connection to ``source``; a driver error becomes a
    :class:`~lockgate.errors.SourceError` naming the source and table, password masked."""
    errors = _driver_errors(source)
    try:
        conn = _open(source)
    except errors as exc:
        raise _source_error(exc, source, table) from None
    try:
        yield Db(conn, source)
    except errors as exc:
        raise _source_error(exc, source, table) from None
    finally:
        conn.close()


def _driver_errors(source: JdbcSource) -> tuple[type[Exception], ...]:
    if source.engine == "postgres":
        import psycopg

        return (psycopg.Error,)
    if source.engine == "mariadb":
        import pymysql

        return (pymysql.Error,)
    return (sqlite3.Error,)


def _open(source: JdbcSource) -> Any:
    if source.engine == "sqlite":
        return sqlite3.connect(f"file:{quote(source.database or '')}?mode=ro", uri=True)
    if source.engine == "postgres":
        import psycopg

        return psycopg.connect(
            host=source.host, port=source.port, user=source.user, password=source.password, dbname=source.database,
            autocommit=True, connect_timeout=10, application_name="lockgate-suggest-suite",
            options="-c default_transaction_read_only=on",
        )  # fmt: skip
    import pymysql

    conn = pymysql.connect(
        host=source.host, port=source.port, user=source.user, password=source.password or "",
        database=source.database, charset="utf8mb4", autocommit=True, connect_timeout=10,
    )  # fmt: skip
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")
    return conn


def _source_error(exc: Exception, source: JdbcSource, table: str) -> SourceError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
    return SourceError(redact.mask(f"source {source.describe()}, table '{table}': {detail}", source.password))


# --- catalog ---------------------------------------------------------------------------
def read_catalog(db: Db, table: TableConfig) -> Catalog:
    """The table's columns and constraints as the source declares them."""
    *schema, name = table.source_parts
    owner = schema[0] if schema else None
    read = {"postgres": _postgres_catalog, "mariadb": _mariadb_catalog, "sqlite": _sqlite_catalog}[db.source.engine]
    catalog = read(db, db.source.table_ref(table.source_name), owner, name)
    if not catalog.columns:
        raise SourceError(f"source {db.source.describe()}: table '{table.source_name}' does not exist")
    return _with_keys(catalog)


def _with_keys(catalog: Catalog) -> Catalog:
    """Mark key, unique and foreign-key columns; keep only multi-column unique sets."""
    singles = {s[0] for s in catalog.unique_sets if len(s) == 1}
    if len(catalog.primary_key) == 1:
        singles.add(catalog.primary_key[0])
    columns = [
        replace(c, primary_key=c.name in catalog.primary_key, unique=c.name in singles,
                foreign_key=c.name in catalog.foreign_keys)
        for c in catalog.columns
    ]  # fmt: skip
    several = [s for s in catalog.unique_sets if len(s) > 1 and s != catalog.primary_key]
    return replace(catalog, columns=columns, unique_sets=list(dict.fromkeys(several)))


_PG_COLUMNS = """
SELECT a.attname, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                       ELSE format_type(a.atttypid, a.atttypmod) END,
       a.attnotnull OR (t.typtype = 'd' AND t.typnotnull),
       a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') ~ '^nextval\\(',
       CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                                            WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_PG_UNIQUE = """
SELECT i.indisprimary, ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
"""
_PG_FOREIGN = """
SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
WHERE c.conrelid = to_regclass(%s) AND c.contype = 'f'
"""


def _postgres_catalog(db: Db, relation: str, schema: str | None, name: str) -> Catalog:
    columns = [
        ColumnProfile(n, t, "text" if labels is not None else _postgres_kind(t), nullable=not notnull,
                      sequence=bool(seq), enum_values=tuple(labels) if labels is not None else None)
        for n, t, notnull, seq, labels in db.rows(_PG_COLUMNS, (relation,))
    ]  # fmt: skip
    indexes = db.rows(_PG_UNIQUE, (relation,))
    primary = next((tuple(cols) for is_pk, cols in indexes if is_pk), ())
    foreign = {r[0] for r in db.rows(_PG_FOREIGN, (relation,))}
    return Catalog(columns, primary, [tuple(cols) for _, cols in indexes], foreign)


def _postgres_kind(native: str) -> Kind:
    t = native.lower()
    if t.endswith("]"):  # an array
        return "other"
    if t in ("smallint", "integer", "bigint"):
        return "integer"
    if t.startswith(("numeric", "decimal", "money")):
        return "decimal"
    if t in ("real", "double precision"):
        return "float"
    if t == "boolean":
        return "bool"
    if t.startswith(("timestamp", "date", "time", "interval")):
        return "time"
    if t.startswith(("text", "character", "citext", "name", '"char"')):
        return "text"
    return "other"


_MARIA_OWNER = "table_schema = COALESCE(%s, DATABASE()) AND table_name = %s"


def _mariadb_catalog(db: Db, relation: str, schema: str | None, name: str) -> Catalog:
    rows = db.rows(
        f"SELECT column_name, column_type, data_type, is_nullable, extra FROM information_schema.columns "
        f"WHERE {_MARIA_OWNER} ORDER BY ordinal_position", (schema, name),
    )  # fmt: skip
    boolean_tinyint = db.source.properties.get("tinyInt1isBit", "true").lower() != "false"
    columns = [
        ColumnProfile(n, t, _mariadb_kind(t, d, boolean_tinyint), nullable=nullable == "YES",
                      sequence="auto_increment" in (extra or "").lower(), enum_values=_enum_labels(t))
        for n, t, d, nullable, extra in rows
    ]  # fmt: skip
    indexes: dict[str, list[str]] = {}
    for index, column in db.rows(
        f"SELECT index_name, column_name FROM information_schema.statistics WHERE {_MARIA_OWNER} "
        "AND non_unique = 0 AND column_name IS NOT NULL ORDER BY index_name, seq_in_index", (schema, name),
    ):  # fmt: skip
        indexes.setdefault(index, []).append(column)
    foreign = {r[0] for r in db.rows(
        f"SELECT column_name FROM information_schema.key_column_usage WHERE {_MARIA_OWNER} "
        "AND referenced_table_name IS NOT NULL", (schema, name),
    )}  # fmt: skip
    return Catalog(columns, tuple(indexes.get("PRIMARY", ())), [tuple(c) for c in indexes.values()], foreign)


def _mariadb_kind(column_type: str, data_type: str, boolean_tinyint: bool) -> Kind:
    t, d = column_type.lower(), data_type.lower()
    if (t.startswith("tinyint(1)") and boolean_tinyint) or t == "bit(1)":
        return "bool"
    if d in ("tinyint", "smallint", "mediumint", "int", "bigint", "bit"):
        return "integer"
    if d == "decimal":
        return "decimal"
    if d in ("float", "double"):
        return "float"
    if d in ("date", "datetime", "timestamp", "time", "year"):
        return "time"
    if d in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"):
        return "text"
    return "other"


_ENUM = re.compile(r"^enum\((.*)\)$", re.IGNORECASE | re.DOTALL)
_QUOTED_LABEL = re.compile(r"'((?:[^']|'')*)'")


def _enum_labels(column_type: str) -> tuple[str, ...] | None:
    """``enum('a','it''s')`` → ``('a', "it's")``; ``None`` for any other type."""
    match = _ENUM.match(column_type.strip())
    return tuple(m.replace("''", "'") for m in _QUOTED_LABEL.findall(match.group(1))) if match else None


def _sqlite_catalog(db: Db, relation: str, schema: str | None, name: str) -> Catalog:
    owner = (schema or "main",)
    info = db.rows("SELECT name, type, \"notnull\", pk FROM pragma_table_info(%s, %s) ORDER BY cid", (name, *owner))
    keyed = sorted((pk, n) for n, _, _, pk in info if pk)
    primary = tuple(n for _, n in keyed)
    # An INTEGER PRIMARY KEY is the rowid: never NULL, assigned in sequence.
    rowid = primary[0] if len(primary) == 1 and next(t for n, t, _, _ in info if n == primary[0]).upper() == "INTEGER" else None
    columns = [
        ColumnProfile(n, t, _sqlite_kind(t), nullable=not notnull and n != rowid, sequence=n == rowid)
        for n, t, notnull, _ in info
    ]
    unique = []
    for index, is_unique, partial in db.rows("SELECT name, \"unique\", partial FROM pragma_index_list(%s, %s)", (name, *owner)):
        cols = [r[0] for r in db.rows("SELECT name FROM pragma_index_info(%s, %s) ORDER BY seqno", (index, *owner))]
        if is_unique and not partial and all(cols):
            unique.append(tuple(cols))
    foreign = {r[0] for r in db.rows("SELECT \"from\" FROM pragma_foreign_key_list(%s, %s)", (name, *owner))}
    return Catalog(columns, primary, unique, foreign)


def _sqlite_kind(declared: str) -> Kind:
    """The kind of SQLite's declared type, in the order :mod:`lockgate.typemap` reads them."""
    upper = declared.upper()
    for pattern, kind in (("BOOL", "bool"), ("INT", "integer"), ("NUMERIC|DECIMAL", "decimal"),
                          ("REAL|FLOA|DOUB", "float"), ("DATE|TIME", "time"), ("BLOB", "other")):  # fmt: skip
        if re.search(pattern, upper):
            return kind  # type: ignore[return-value]
    return "text"


# --- the batch's columns -------------------------------------------------------------
def batch_columns(catalog: Catalog, table: TableConfig, where: str) -> list[ColumnProfile]:
    """The catalog's columns the extract reads, named as the batch names them, hashed
    ones marked (:func:`lockgate.typemap.select_columns`, as the extract applies it)."""
    selection = typemap.Selection(
        tuple(table.columns) if table.columns is not None else None, tuple(table.exclude_columns), tuple(table.hash_columns)
    )  # fmt: skip
    declared = [typemap.SourceColumn(c.name, c.native) for c in catalog.columns]
    kept = {c.name for c in typemap.select_columns(declared, selection, where)}
    return [replace(c, hashed=c.name in selection.hashed) for c in catalog.columns if c.name in kept]


def order_column(catalog: Catalog, table: TableConfig) -> str | None:
    """The column that orders rows from older to newer: a one-column integer or time
    primary key (the table config's, else the catalog's), else a one-column cursor."""
    kinds = {c.name: c.kind for c in catalog.columns}
    candidates = [table.primary_key, list(catalog.primary_key)]
    if table.cursor:
        candidates.append(list(cursors.parse_columns(table.cursor)))
    return next((c[0] for c in candidates if len(c) == 1 and kinds.get(c[0]) in ("integer", "time")), None)


# --- statistics ------------------------------------------------------------------------
def profile_table(
    db: Db,
    table: TableConfig,
    where: str,
    *,
    ranged: Callable[[ColumnProfile], bool],
    valued: Callable[[ColumnProfile], bool],
    sample_rows: int,
    max_set: int,
) -> TableProfile:
    """Catalog, whole-table aggregates, distinct values of the ``valued`` columns and a
    sample of the ``ranged`` ones (``where``: ``<source>.<table>`` for messages)."""
    catalog = read_catalog(db, table)
    columns = batch_columns(catalog, table, where)
    relation = db.source.table_ref(table.source_name)
    numeric = [c for c in columns if not c.hashed and c.kind in NUMERIC_KINDS and ranged(c)]
    texts = [c for c in columns if not c.hashed and c.kind == "text" and c.enum_values is None and valued(c)]
    rows = read_totals(db, relation, columns, numeric)
    order_by = order_column(catalog, table)
    stats = pg_stats(db, relation) if db.source.engine == "postgres" and texts else {}
    checked = [c for c in texts if c.name in stats]  # the sample checks pg_stats' list of values
    sample, values = read_sample(db, relation, order_by, [*numeric, *checked], rows, sample_rows)
    for col in numeric:
        col.halves = Halves.split(values[col.name]) if order_by else None
    for col in texts:
        known = stats[col.name].distinct(rows) if col.name in stats else None
        col.distinct = read_distinct(db, relation, col, max_set, known, set(values.get(col.name, ())))
    for col in columns:
        if col.enum_values is not None:
            col.distinct = Distinct("declared enum", col.enum_values)
    return TableProfile(db.source.engine, table.source_name, rows, columns, catalog.primary_key, catalog.unique_sets, sample)


def _number(value: Any) -> Any:
    """A driver's number as int or float (JSON-ready); anything else is ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value if isinstance(value, int | float) else None


def read_totals(db: Db, relation: str, columns: list[ColumnProfile], numeric: list[ColumnProfile]) -> int:
    """One scan: the row count, every column's non-NULL count, MIN and MAX of ``numeric``."""
    items = ["COUNT(*)"] + [f"COUNT({db.quote(c.name)})" for c in columns]
    items += [f"{f}({db.quote(c.name)})" for c in numeric for f in ("MIN", "MAX")]
    row = db.rows(f"SELECT {', '.join(items)} FROM {relation}")[0]
    for i, col in enumerate(columns):
        col.non_null = int(row[1 + i])
    for i, col in enumerate(numeric):
        col.minimum, col.maximum = (_number(v) for v in row[1 + len(columns) + 2 * i : 3 + len(columns) + 2 * i])
    return int(row[0])


def read_sample(
    db: Db, relation: str, order_by: str | None, columns: list[ColumnProfile], rows: int, size: int
) -> tuple[Sample, dict[str, list[Any]]]:
    """About ``size`` rows spread over the whole table, ordered by ``order_by``; each
    column's non-NULL values in that order."""
    method, filtered = _sampling(db, relation, size / rows if rows > size else None)
    values: dict[str, list[Any]] = {c.name: [] for c in columns}
    if not columns:
        return Sample(0, method, order_by), values
    select = ", ".join(db.quote(c.name) for c in columns)
    order = f" ORDER BY {db.quote(order_by)}" if order_by else ""
    result = db.rows(f"SELECT {select} FROM {filtered}{order}")
    for i, col in enumerate(columns):
        convert = _number if col.kind in NUMERIC_KINDS else str
        values[col.name] = [convert(r[i]) for r in result if r[i] is not None]
    return Sample(len(result), method + (f", ordered by {order_by}" if order_by else ""), order_by), values


def _sampling(db: Db, relation: str, fraction: float | None) -> tuple[str, str]:
    """(how the sample is drawn, ``relation`` with the sampling filter)."""
    if fraction is None:
        return "the whole table", relation
    percent = f"{100 * fraction:.3g}%"
    if db.source.engine == "postgres" and _pg_samplable(db, relation):
        return (f"TABLESAMPLE BERNOULLI ({percent}) REPEATABLE ({SAMPLE_SEED})",
                f"{relation} TABLESAMPLE BERNOULLI ({100 * fraction!r}) REPEATABLE ({SAMPLE_SEED})")  # fmt: skip
    if db.source.engine == "postgres":  # a view: random() after setseed is repeatable too
        db.rows(f"SELECT setseed({SAMPLE_SEED / 100})")
        return f"random rows ({percent}, seed {SAMPLE_SEED})", f"{relation} WHERE random() < {fraction!r}"
    if db.source.engine == "mariadb":
        return f"RAND({SAMPLE_SEED}) rows ({percent})", f"{relation} WHERE RAND({SAMPLE_SEED}) < {fraction!r}"
    return f"random rows ({percent})", f"{relation} WHERE abs(random() % 1000000) < {int(fraction * 1_000_000)}"


def _pg_samplable(db: Db, relation: str) -> bool:
    """TABLESAMPLE reads tables, materialized views and partitioned tables, not views."""
    return db.rows("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", (relation,))[0][0] in "rmp"


@dataclass(frozen=True)
class PgStat:
    """A column's row in ``pg_stats``."""

    null_frac: float
    n_distinct: float
    common: tuple[str, ...] | None
    frequencies: tuple[float, ...] | None

    def distinct(self, rows: int) -> Distinct:
        """Every value when the most common values cover all non-NULL rows, else the
        estimated count (a negative ``n_distinct`` is a fraction of the rows)."""
        count = self.n_distinct if self.n_distinct >= 0 else -self.n_distinct * rows
        covered = self.null_frac + sum(self.frequencies or ())
        if self.common is not None and len(self.common) == round(count) and covered >= 0.999:
            return Distinct("pg_stats", tuple(sorted(self.common)))
        return Distinct("pg_stats", None, count)


_PG_STATS = """
SELECT s.attname::text, s.null_frac, s.n_distinct, s.most_common_vals::text::text[], s.most_common_freqs
FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
WHERE c.oid = to_regclass(%s) ORDER BY s.inherited
"""


def pg_stats(db: Db, relation: str) -> dict[str, PgStat]:
    """``pg_stats`` of an analysed table whose rows changed little since (else empty)."""
    changed, estimate = db.rows(
        "SELECT coalesce(s.n_mod_since_analyze, 0), greatest(c.reltuples, 1) FROM pg_class c "
        "LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(%s)", (relation,),
    )[0]  # fmt: skip
    if changed > STALE_STATS * estimate:
        return {}
    stats: dict[str, PgStat] = {}
    for name, null_frac, n_distinct, common, freqs in db.rows(_PG_STATS, (relation,)):
        stats.setdefault(name, PgStat(null_frac, n_distinct, tuple(common) if common else None,
                                      tuple(freqs) if freqs else None))  # fmt: skip
    return stats


def read_distinct(db: Db, relation: str, col: ColumnProfile, max_set: int, known: Distinct | None,
                  seen: set[str]) -> Distinct:  # fmt: skip
    """``known`` (from ``pg_stats``) when it lists every value the sample saw or says
    there are many, else up to ``max_set + 1`` distinct values of the whole table."""
    if known is not None and (known.values is None or seen <= set(known.values)):
        return known
    exact = {"mariadb": f"CONVERT({db.quote(col.name)} USING utf8mb4) COLLATE utf8mb4_bin",
             "sqlite": f"{db.quote(col.name)} COLLATE BINARY"}.get(db.source.engine, db.quote(col.name))  # fmt: skip
    found = db.rows(f"SELECT DISTINCT {exact} FROM {relation} WHERE {db.quote(col.name)} IS NOT NULL LIMIT {max_set + 1}")
    if len(found) > max_set:
        return Distinct("whole table", None)
    return Distinct("whole table", tuple(sorted(str(r[0]) for r in found)))
