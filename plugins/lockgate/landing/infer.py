"""Column types of files without a declared schema, sniffed by DuckDB from each file
(its header names the columns), and the Spark type names a raw version records."""

from __future__ import annotations

from pathlib import Path

from lockgate.config import FilesConfig
from lockgate.identifiers import sql_text
from lockgate.landing import convert

#: DuckDB's sniffed types → the Spark type names of a manifest (:mod:`lockgate.typemap`).
_SNIFFED = {
    "BIGINT": "bigint", "INTEGER": "int", "SMALLINT": "smallint", "TINYINT": "tinyint", "DOUBLE": "double",
    "FLOAT": "float", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp", "VARCHAR": "string",
}  # fmt: skip
SAMPLE_ROWS = 20_480


def file_schema(conn, path: Path, spec: FilesConfig, gzip: bool) -> dict[str, str]:
    """One file's columns and sniffed types (anything unusual is read as text)."""
    sniffed = conn.execute(
        f"SELECT Columns FROM sniff_csv({sql_text(str(path))}, {convert.read_options(spec, gzip)}, "
        f"header = {str(spec.header).lower()}, sample_size = {SAMPLE_ROWS})"
    ).fetchone()[0]
    return {c["name"]: _SNIFFED.get(str(c["type"]).upper(), "string") for c in sniffed}


def batch_schema(files: list[tuple[str, Path]], spec: FilesConfig) -> dict[str, str]:
    """The union of the files' columns in order of first appearance; a column sniffed
    as two types (a number in one file, text in another) is text."""
    import duckdb

    schema: dict[str, str] = {}
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        for key, path in files:
            try:
                columns = file_schema(conn, path, spec, convert.is_gzip(key, spec))
            except duckdb.Error:
                continue  # unreadable: its lines are rejected when it is converted
            for name, kind in columns.items():
                schema[name] = kind if schema.get(name, kind) == kind else _wider(schema[name], kind)
    finally:
        conn.close()
    return schema


def _wider(a: str, b: str) -> str:
    numbers = ("tinyint", "smallint", "int", "bigint", "double")
    if a in numbers and b in numbers:
        return numbers[max(numbers.index(a), numbers.index(b))]
    return "string"
