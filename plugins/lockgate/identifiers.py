"""Names as the source spells them, and the rules that map them to the warehouse.

A column or table name in a source file is the name exactly as the source has it:
case, spaces, reserved words and non-ASCII letters included (``LastUpdate``,
``order``, ``café``, ``line items``). Lockgate quotes every name in the SQL it sends
(PostgreSQL and SQLite ``"…"``, MariaDB `````…`````, an embedded quote doubled) and in
DuckDB. A name may also be written in SQL double quotes (``'"LastUpdate"'``): the quotes
are removed and ``""`` inside stands for one ``"``. ``source_table`` is ``table`` or
``schema.table`` (MariaDB: ``database.table``); a part containing a dot is written in
double quotes (``sales."Open Orders"``, ``"a.b"``).

The warehouse keeps each source column's name as it is. DuckDB compares names without
regard to case, so two names equal but for case (``Id``/``id``) would be one column:
such a pair is refused (at config load for the names a table lists, at the first run
for the source's columns), naming both.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_NAME = 128
#: Names Lockgate adds to warehouse tables and quarantine files.
RESERVED_PREFIX = "_lockgate_"
_QUOTED = re.compile(r'^"((?:[^"]|"")*)"$', re.DOTALL)


def unquote(text: str) -> str:
    """A name in SQL double quotes without them (``""`` inside is one ``"``); any other
    text is returned as it is."""
    match = _QUOTED.match(text)
    return match.group(1).replace('""', '"') if match else text


def sql_ident(name: str) -> str:
    """``name`` as one SQL identifier in double quotes (``"`` doubled inside)."""
    return '"' + name.replace('"', '""') + '"'


def sql_text(value: str) -> str:
    """``value`` as an SQL string literal in single quotes (``'`` doubled inside)."""
    return "'" + value.replace("'", "''") + "'"


def is_quoted(text: str) -> bool:
    """Is ``text`` one name in SQL double quotes?"""
    return bool(_QUOTED.match(text))


def check_name(name: str) -> str:
    """A column name as the source has it: 1 to 128 characters, no control characters."""
    if not isinstance(name, str):
        raise ValueError(f"a column name is text (got {name!r})")
    if not name:
        raise ValueError("a column name may not be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"column name {name!r} is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError(f"column name {name!r} contains a control character")
    return name


def column_name(value: str) -> str:
    """A configured column name: unquoted (see the module doc) and checked."""
    return check_name(unquote(value) if isinstance(value, str) else value)


def split_list(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside double quotes (parts kept as written)."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError(f"unbalanced double quote in {text!r}")
    return [*parts, "".join(current)]


def split_qualified(text: str) -> tuple[str, ...]:
    """``table`` or ``schema.table`` → its one or two parts, unquoted."""
    parts = split_list(text, ".")
    if len(parts) > 2:
        raise ValueError(f"expected 'table' or 'schema.table' (write a name containing '.' in double quotes): {text!r}")
    names = []
    for part in parts:
        if '"' in part and not _QUOTED.match(part):
            raise ValueError(f"a quoted part must be wholly in double quotes ('\"x\"\"y\"'): {text!r}")
        names.append(check_name(unquote(part)))
    return tuple(names)


def warehouse_key(name: str) -> str:
    """How DuckDB tells names apart: without regard to case."""
    return name.casefold()


def collisions(names: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of distinct names that are one name in the warehouse (``Id``/``id``)."""
    seen: dict[str, str] = {}
    pairs = []
    for name in names:
        first = seen.setdefault(warehouse_key(name), name)
        if first != name and (first, name) not in pairs:
            pairs.append((first, name))
    return pairs


def collision_message(pairs: list[tuple[str, str]], what: str = "columns") -> str:
    """``columns 'Id' and 'id' map to the same warehouse column ...``."""
    kind = what.rstrip("s")
    listed = "; ".join(f"{what} '{a}' and '{b}'" for a, b in pairs)
    return (
        f"{listed} map to the same warehouse {kind} (DuckDB names are case-insensitive); "
        f"keep one of them (exclude_columns) or rename one in a source view"
        if what == "columns"
        else f"{listed} map to the same warehouse {kind} (DuckDB names are case-insensitive); rename one"
    )
