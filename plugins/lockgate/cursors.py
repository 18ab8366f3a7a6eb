"""The cursor contract: what a table's cursor is, and how a slice ``[lo, hi)`` of UTC
instants becomes a predicate on the source and the warehouse's delete window.

A slice's bounds are always UTC instants (:mod:`lockgate.incremental`). A cursor is
one column or ``COALESCE`` of several (``cursor: {coalesce: [updated_at, created_at]}``,
column names only, spelled as the source has them: :mod:`lockgate.identifiers`), of one *kind*:

- ``timestamp`` (default): ``timestamptz``/``TIMESTAMP``/``DATETIME``/SQLite text. A
  column without a time zone holds wall-clock time in ``cursor_timezone`` (default
  UTC); each bound is turned into that zone's wall clock with :func:`wall_bound`.
  Daylight saving time, decided once here for the source and the warehouse alike: a
  wall-clock value of the repeated hour (autumn) belongs to its *first* occurrence;
  a value of the skipped hour (spring), which no clock showed, belongs to the slice
  that ends at the transition. Every value still falls into exactly one slice.
- ``date``: a day is the instant of its midnight in ``cursor_timezone``; slices are
  widened to whole days (:func:`whole_days`), so the read and the delete window are
  the same days.
- ``epoch_seconds`` / ``epoch_millis``: an integer (or real) number since 1970-01-01
  UTC; a bound becomes the smallest whole number at or after it.
- ``id``: an ever-growing integer (an identity or AUTO_INCREMENT key, a sequence
  number) that is no time at all. Its slices are id ranges, not data intervals: a run
  reads from the table's watermark (an id) up to the highest id at read time, and a
  reprocessed interval reads again the id range it read before
  (:mod:`lockgate.incremental`).

SQLite keeps timestamps as text in several formats (``T`` or space, with or without
seconds, fractions, an offset or ``Z``): they are compared as times, normalised by the
source to ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (values with an offset are converted),
never as strings. A value SQLite cannot read counts as a NULL cursor.

NULL cursors (``null_cursor``): such a row is in no slice. ``fail`` (default) stops the
run naming the table and the count, ``include`` reads them on every run (``merge``
only: idempotent by key), ``exclude`` skips them and records the count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lockgate import identifiers
from lockgate.errors import ConfigError

if TYPE_CHECKING:
    from lockgate.config import TableConfig
    from lockgate.sources import JdbcSource

CursorKind = Literal["timestamp", "date", "epoch_seconds", "epoch_millis", "id"]
NullCursorPolicy = Literal["fail", "include", "exclude"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQLISH = re.compile(r"""[()\[\];,'"+*/=<>|!%^&~-]""")
_COALESCE = re.compile(r"^\s*coalesce\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_EPOCH_UNITS = {"epoch_seconds": 1_000_000, "epoch_millis": 1_000}
#: The position before every id (the smallest BIGINT): an ``id`` slice ``[FIRST_ID,
#: FIRST_ID)`` reads nothing, and a watermark there reads everything next time.
FIRST_ID = -(2**63)


# --- the cursor setting --------------------------------------------------------------
def parse_columns(value: Any) -> tuple[str, ...]:
    """``updated_at``, ``"COALESCE(updated_at, created_at)"`` or ``{coalesce: [...]}`` →
    the column names, as the source spells them (any case, spaces, non-ASCII; a name in
    double quotes is unquoted, see :mod:`lockgate.identifiers`). Nothing but column
    names is accepted (no SQL): in the ``COALESCE(...)`` text a name containing ``,``
    or ``)`` is written in double quotes."""
    if isinstance(value, dict):
        if set(value) != {"coalesce"} or not isinstance(value["coalesce"], list):
            raise ValueError("a structured cursor is {coalesce: [column, column, ...]}")
        names = value["coalesce"]
    elif isinstance(value, str) and _COALESCE.match(value):
        names = [part.strip() for part in identifiers.split_list(_COALESCE.match(value).group(1), ",")]
    elif isinstance(value, str):
        names = [value]
    else:
        raise ValueError(f"expected a column name or {{coalesce: [columns]}} (got {value!r})")
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"a cursor may name only columns (got {names!r})")
    if not isinstance(value, dict):
        _not_sql(names)
    names = [identifiers.column_name(n) for n in names]
    if len(set(names)) != len(names):
        raise ValueError(f"a cursor names a column twice ({names!r})")
    return tuple(names)


def _not_sql(written: list[str]) -> None:
    """The text form takes column names, never SQL: an unquoted name with an operator,
    a parenthesis, a quote or ``;`` is refused (such a column is written in double
    quotes, or in the structured form)."""
    bad = [n for n in written if not identifiers.is_quoted(n) and _SQLISH.search(n)]
    if bad:
        raise ValueError(
            f"a cursor names only columns, never SQL (got {bad[0]!r}); write a column whose name has such "
            "characters in double quotes"
        )


def _written(name: str, in_list: bool) -> str:
    """A name as :func:`parse_columns` reads it back (quoted only where needed)."""
    plain = _IDENT.match(name) if in_list else not (_COALESCE.match(name) or _SQLISH.search(name))
    return name if plain else '"' + name.replace('"', '""') + '"'


def canonical(columns: tuple[str, ...]) -> str:
    """The cursor as text; :func:`parse_columns` reads it back to the same columns."""
    if len(columns) == 1:
        return _written(columns[0], in_list=False)
    return f"COALESCE({', '.join(_written(c, in_list=True) for c in columns)})"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from None


# --- bounds ------------------------------------------------------------------------
def _repeated(wall: datetime, tz: ZoneInfo) -> bool:
    """Does ``wall`` (naive) occur twice in ``tz`` (the autumn hour)?"""
    a, b = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    return a.utcoffset() != b.utcoffset() and all(
        x.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall for x in (a, b)
    )


def wall_bound(instant: datetime, tz: ZoneInfo) -> datetime:
    """The smallest wall-clock time (naive) whose instant is at or after ``instant``.

    Normally the zone's wall clock of ``instant``. Inside the second occurrence of a
    repeated hour, every wall-clock value of that hour means its first occurrence
    (before ``instant``): the bound is the end of the repeated hour."""
    local = instant.astimezone(tz)
    wall = local.replace(tzinfo=None, fold=0)
    if not local.fold:
        return wall
    lo, hi = wall, wall + (local.replace(fold=0).utcoffset() - local.utcoffset())
    while hi - lo > _MICRO:  # the first wall-clock value after the repeated hour
        mid = lo + (hi - lo) // 2
        lo, hi = (mid, hi) if _repeated(mid, tz) else (lo, mid)
    return hi


def wall_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """A stored wall-clock value as an instant (the first occurrence of a repeated hour)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def day_bound(instant: datetime, tz: ZoneInfo) -> date:
    """The first day whose midnight (in ``tz``) is at or after ``instant``."""
    wall = wall_bound(instant, tz)
    return wall.date() if wall.time() == datetime.min.time() else wall.date() + timedelta(days=1)


def whole_days(lo: datetime | None, hi: datetime | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """Widen ``[lo, hi)`` outwards to midnights in ``tz`` (a ``date`` cursor's slice)."""
    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)

    new_lo = None if lo is None else midnight(lo.astimezone(tz).date())
    new_hi = None if hi is None else midnight(day_bound(hi, tz))
    return new_lo, new_hi


def epoch_bound(instant: datetime, kind: str) -> int:
    """The smallest whole epoch number (seconds or milliseconds) at or after ``instant``."""
    micros = (instant.astimezone(UTC) - _EPOCH) // _MICRO
    unit = _EPOCH_UNITS[kind]
    return -(-micros // unit)


def _text(wall: datetime, fraction: bool = False) -> str:
    text = wall.strftime("%Y-%m-%d %H:%M:%S")
    return text + f".{wall.microsecond:06d}" if fraction or wall.microsecond else text


def _offset(value: datetime) -> str:
    minutes = int(value.utcoffset().total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# --- the cursor ----------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """One table's cursor: columns, kind, the zone of its wall clock and NULL policy."""

    columns: tuple[str, ...]
    kind: CursorKind = "timestamp"
    timezone: str = "UTC"
    null_policy: NullCursorPolicy = "fail"

    @classmethod
    def of(cls, table: TableConfig) -> Cursor | None:
        if not table.cursor:
            return None
        return cls(parse_columns(table.cursor), table.cursor_kind, table.cursor_timezone, table.null_cursor)

    @classmethod
    def named(cls, cursor: str | None) -> Cursor | None:
        return cls(parse_columns(cursor)) if cursor else None

    @property
    def name(self) -> str:
        return canonical(self.columns)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def epoch(self) -> bool:
        return self.kind in _EPOCH_UNITS

    @property
    def ordinal(self) -> bool:
        """An ``id`` cursor: positions are whole numbers, not instants."""
        return self.kind == "id"

    # -- source side --
    def _base(self, quote) -> str:
        quoted = [quote(c) for c in self.columns]
        return quoted[0] if len(quoted) == 1 else f"COALESCE({', '.join(quoted)})"

    def source_expr(self, source: JdbcSource) -> str:
        """The cursor as the source computes it (SQLite: normalised, see the module doc)."""
        base = self._base(source.quote)
        if source.engine != "sqlite" or self.epoch or self.ordinal:
            return base
        if self.kind == "date":
            return f"date({base})"
        return sqlite_time(base)

    def source_literal(self, source: JdbcSource, instant: datetime | int) -> str:
        if self.ordinal:
            return str(position(instant))
        if self.epoch:
            return str(epoch_bound(instant, self.kind))
        tz = self.tz
        if self.kind == "date":
            day = day_bound(instant, tz).isoformat()
            return f"'{day}'" if source.engine == "sqlite" else f"DATE '{day}'"
        wall = wall_bound(instant, tz)
        if source.engine == "sqlite":
            return f"'{_text(wall, fraction=True)}'"
        if source.engine == "postgres":
            # Untyped on purpose: a timestamptz column honours the offset, a timestamp
            # column (wall clock in cursor_timezone) ignores it.
            return f"'{_text(wall)}{_offset(wall.replace(tzinfo=tz, fold=0))}'"
        return f"'{_text(wall)}'"

    def source_range(self, source: JdbcSource, lo: datetime | None, hi: datetime | None) -> str:
        expr = self.source_expr(source)
        terms = [f"{expr} >= {self.source_literal(source, lo)}"] if lo is not None else []
        if hi is not None:
            terms.append(f"{expr} < {self.source_literal(source, hi)}")
        return " AND ".join(terms) or "1=1"

    def source_predicate(self, source: JdbcSource, lo: datetime | None, hi: datetime | None) -> str:
        """The slice on the source; with ``null_cursor: include`` NULL cursors too."""
        predicate = self.source_range(source, lo, hi)
        if self.null_policy == "include" and predicate != "1=1":
            return f"(({predicate}) OR {self.null_predicate(source)})"
        return predicate

    def null_predicate(self, source: JdbcSource) -> str:
        return f"{self.source_expr(source)} IS NULL"

    # -- warehouse (DuckDB) side --
    def duck_expr(self, prefix: str = "") -> str:
        def quote(name: str) -> str:
            return prefix + '"' + name.replace('"', '""') + '"'

        return self._base(quote)

    def duck_literal(self, column_type: str, instant: datetime | int) -> str:
        """A bound for the warehouse column (its DuckDB type) equal to the source's."""
        if self.ordinal:
            return str(position(instant))
        if self.epoch:
            return str(epoch_bound(instant, self.kind))
        tz = self.tz
        if self.kind == "date":
            return f"DATE '{day_bound(instant, tz).isoformat()}'"
        if column_type == "DATE":
            raise ConfigError(
                f"cursor '{self.name}' is a DATE column: set 'cursor_kind: date' so that slices are whole days "
                "(a timestamp bound would cut a day in two)"
            )
        wall = wall_bound(instant, tz)
        if column_type == "TIMESTAMP WITH TIME ZONE":
            return f"TIMESTAMPTZ '{wall.replace(tzinfo=tz, fold=0).isoformat()}'"
        return f"TIMESTAMP '{wall.isoformat(sep=' ')}'"

    # -- values read --
    def instant(self, value: Any) -> datetime | int | None:
        """A cursor value read from the batch as a UTC instant (for ``cursor_max``);
        an ``id`` cursor's value as the whole number it is."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.ordinal:
            return position(value)
        if self.epoch:
            return _EPOCH + timedelta(microseconds=int(value * _EPOCH_UNITS[self.kind]))
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else wall_instant(value, self.tz)
        if isinstance(value, date):
            return wall_instant(datetime(value.year, value.month, value.day), self.tz)
        return None


def position(value: Any) -> int:
    """An ``id`` cursor's bound or value as a whole number; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        text = str(value).strip()
        if not re.fullmatch(r"-?[0-9]+", text):
            raise ConfigError(f"cursor_kind 'id' needs a whole-number cursor column (got the value {value!r})")
        value = int(text)
    return value


def sqlite_time(expr: str) -> str:
    """SQLite: a text timestamp as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC when it has an
    offset), comparable as text; NULL when SQLite cannot read it.

    ``datetime()`` reads every SQLite time format (``T`` or space, optional seconds,
    ``Z`` or ``±HH:MM``) but keeps only whole seconds; the fraction is taken from the
    text itself (digits after the first ``.``, up to the offset), padded to 6 digits."""
    point = f"instr({expr}, '.')"
    tail = f"substr({expr}, {point} + 1, 6)"
    stops = ", ".join(f"CASE instr({tail}, '{c}') WHEN 0 THEN 7 ELSE instr({tail}, '{c}') END" for c in "+-Zz ")
    fraction = f"CASE WHEN {point} > 0 THEN substr(substr({tail}, 1, min({stops}) - 1) || '000000', 1, 6) ELSE '000000' END"
    return f"(datetime({expr}) || '.' || {fraction})"
