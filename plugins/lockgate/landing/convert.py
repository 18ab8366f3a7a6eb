"""One landing file → one Parquet file, with DuckDB's CSV reader.

Nothing is lost silently: a line with the wrong number of fields, a value that does not
parse as its column's type or text that is not valid in the file's encoding is set aside
as a :class:`Reject` with the file's key and the line number (the header is line 1), and
for every file ``rows_in = rows_parsed + rows_rejected``. Before DuckDB reads a file, one
pass over its bytes takes the SHA-256, counts its lines and checks a gzip stream to its
end: DuckDB reads a truncated gzip file up to the cut without an error, so a truncated
file is refused whole (every line it has is counted as rejected).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from lockgate.config import FILE_COLUMN, FilesConfig
from lockgate.errors import LakeError
from lockgate.identifiers import sql_ident, sql_text
from lockgate.typemap import duckdb_type

BLOCK = 1 << 20


@dataclass(frozen=True)
class Reject:
    """A line that was not loaded, and why."""

    file: str
    line: int | None
    column: str | None
    error: str
    message: str
    text: str | None


@dataclass(frozen=True)
class Scan:
    """One pass over a file's bytes."""

    sha256: str
    lines: int  # non-empty lines, the header included
    truncated: bool


@dataclass
class Converted:
    """One file's outcome: rows written to Parquet, and the lines set aside."""

    key: str
    scan: Scan
    rows_parsed: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rows_rejected: int = 0

    @property
    def rows_in(self) -> int:
        return self.rows_parsed + self.rows_rejected


def is_gzip(key: str, spec: FilesConfig) -> bool:
    return spec.compression == "gzip" or spec.compression == "auto" and key.endswith(".gz")


def scan(path: Path, gzip: bool) -> Scan:
    """SHA-256 of the stored bytes, non-empty lines of the content, and whether a gzip
    stream stops before its end (a file cut short in transfer or still being written)."""
    digest = hashlib.sha256()
    inflate = zlib.decompressobj(wbits=47) if gzip else None
    counter = _LineCounter()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
            if inflate is None:
                counter.feed(block)
                continue
            while block:
                counter.feed(inflate.decompress(block))
                block = inflate.unused_data
                if inflate.eof and block:  # the next gzip member of a multi-member file
                    inflate = zlib.decompressobj(wbits=47)
                elif not inflate.eof:
                    break
    truncated = inflate is not None and not inflate.eof
    return Scan(digest.hexdigest(), counter.total(), truncated)


class _LineCounter:
    """Counts non-empty lines across blocks (the reader skips an empty line, LF or CRLF)."""

    EMPTY = re.compile(rb"(?<=\n)\r?\n")

    def __init__(self) -> None:
        self.newlines = self.empty = 0
        self.tail = b"\n"  # the start of the content counts as after a line end
        self.any = False

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.any = True
        self.newlines += data.count(b"\n")
        window = self.tail + data  # an empty line may start in the previous block
        if b"\n\n" in window or b"\n\r\n" in window:  # rare: skip the regex for the common block
            self.empty += sum(1 for m in self.EMPTY.finditer(window) if m.end() > len(self.tail))
        self.tail = window[-2:]

    def total(self) -> int:
        if not self.any:
            return 0
        return self.newlines + (0 if self.tail.endswith(b"\n") else 1) - self.empty


def read_options(spec: FilesConfig, gzip: bool) -> str:
    delimiter, quote, escape = spec.dialect
    options = {
        "delim": delimiter, "quote": quote, "escape": escape, "nullstr": spec.null_marker,
        "encoding": spec.encoding, "compression": "gzip" if gzip else "none",
    }  # fmt: skip
    return ", ".join(f"{k} = {sql_text(v)}" for k, v in options.items())


def header(path: Path, spec: FilesConfig, gzip: bool) -> list[str]:
    """The column names in a file's first line."""
    import csv
    import gzip as gz

    delimiter, quote, escape = spec.dialect
    opener = gz.open if gzip else open
    with opener(path, "rt", encoding=spec.encoding, errors="replace", newline="") as handle:
        first = handle.readline()
    if quote:
        reader = csv.reader([first], delimiter=delimiter, quotechar=quote, escapechar=None if escape == quote else escape)
    else:
        reader = csv.reader([first], delimiter=delimiter, quoting=csv.QUOTE_NONE)
    return [name.strip() for name in next(reader, [])]


def convert(conn, path: Path, key: str, spec: FilesConfig, schema: dict[str, str], file_columns: list[str],
            out: Path, scanned: Scan) -> Converted:  # fmt: skip
    """Read the file (its columns in ``file_columns`` order) into ``out`` as Parquet with
    the batch's ``schema`` (missing columns NULL) and the file's key in ``_lockgate_file``.

    Timestamps are read as text and cast afterwards: DuckDB's CSV reader turns a value
    that does not parse as ``TIMESTAMPTZ`` into NULL without a reject, and its
    ``TIMESTAMP`` drops a UTC offset. A value with an offset is that instant; one
    without is UTC. Such a file is written twice (the text, then the cast rows), which
    streams instead of holding the file in memory."""
    result = Converted(key, scanned)
    if scanned.truncated:
        result.rejects.append(_truncated(key, scanned, spec))
        result.rows_rejected = max(scanned.lines - (1 if spec.header else 0), 0)
        return result
    conn.execute("SET TimeZone = 'UTC'")
    stamps = [c for c in file_columns if schema[c] == "timestamp"]
    read_types = {c: "VARCHAR" if c in stamps else duckdb_type(schema[c]) or "VARCHAR" for c in file_columns}
    columns = "{" + ", ".join(f"{sql_text(c)}: {sql_text(t)}" for c, t in read_types.items()) + "}"
    conn.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans; DROP TABLE IF EXISTS bad")
    source = (
        f"read_csv({sql_text(str(path))}, {read_options(spec, gzip=is_gzip(key, spec))}, "
        f"header = {str(spec.header).lower()}, columns = {columns}, auto_detect = false, store_rejects = true, "
        "rejects_table = 'reject_errors', rejects_scan = 'reject_scans')"
    )
    text = out.with_name(f".{out.name}.text")
    select = ", ".join(_output(c, t, file_columns, stamps) for c, t in schema.items())
    query = f"SELECT {select}{', ' if select else ''}{sql_text(key)} AS {FILE_COLUMN} FROM "
    try:
        if not stamps:
            conn.execute(f"COPY ({query}{source}) TO {sql_text(str(out))} (FORMAT parquet, COMPRESSION zstd)")
            rejects, bad = _read_rejects(conn, key), []
        else:
            conn.execute(f"COPY (SELECT * FROM {source}) TO {sql_text(str(text))} (FORMAT parquet)")
            rejects = _read_rejects(conn, key)
            staged = f"read_parquet({sql_text(str(text))}, file_row_number = true)"
            bad = _bad_timestamps(conn, key, stamps, spec, rejects, staged)
            keep = " WHERE file_row_number NOT IN (SELECT record FROM bad)" if bad else ""
            conn.execute(f"COPY ({query}{staged}{keep}) TO {sql_text(str(out))} (FORMAT parquet, COMPRESSION zstd)")
    except Exception as exc:  # noqa: BLE001 - DuckDB reports unreadable files as several error types
        raise LakeError(f"landing file {key}: cannot be read as {spec.format} ({exc})") from None
    finally:
        text.unlink(missing_ok=True)
    result.rows_parsed = conn.execute(f"SELECT count(*) FROM read_parquet({sql_text(str(out))})").fetchone()[0]
    result.rejects = sorted([*rejects, *bad], key=lambda r: r.line or 0)
    result.rows_rejected = len({r.line for r in result.rejects})
    return result


def _read_rejects(conn, key: str) -> list[Reject]:
    rows = conn.execute(
        "SELECT line, column_name, error_type::VARCHAR, error_message, csv_line FROM reject_errors ORDER BY line"
    ).fetchall()
    return [Reject(key, int(line), column, kind, message, text) for line, column, kind, message, text in rows]


def _output(column: str, spark_type: str, file_columns: list[str], stamps: list[str]) -> str:
    if column not in file_columns:
        return f"NULL::{duckdb_type(spark_type)} AS {sql_ident(column)}"
    if column in stamps:
        return f"CAST({sql_ident(column)} AS TIMESTAMPTZ) AS {sql_ident(column)}"
    return sql_ident(column)


def _bad_timestamps(conn, key: str, stamps: list[str], spec: FilesConfig, rejects: list[Reject],
                    staged: str) -> list[Reject]:  # fmt: skip
    """Records whose timestamp text does not parse (kept in the table ``bad``), each
    with the line it came from: the reader numbers lines by record, the header first,
    and a rejected line yields no record."""
    failed = " OR ".join(f"({sql_ident(c)} IS NOT NULL AND TRY_CAST({sql_ident(c)} AS TIMESTAMPTZ) IS NULL)" for c in stamps)
    first_bad = "CASE " + " ".join(
        f"WHEN {sql_ident(c)} IS NOT NULL AND TRY_CAST({sql_ident(c)} AS TIMESTAMPTZ) IS NULL THEN [{sql_text(c)}, {sql_ident(c)}]"
        for c in stamps
    ) + " END"
    conn.execute(f"CREATE TEMP TABLE bad AS SELECT file_row_number AS record, {first_bad} AS what FROM {staged} "
                 f"WHERE {failed} ORDER BY record")  # fmt: skip
    found = conn.execute("SELECT record, what FROM bad ORDER BY record").fetchall()
    skipped = sorted({r.line for r in rejects if r.line is not None})
    first, j, out = 2 if spec.header else 1, 0, []
    for record, (column, value) in found:  # records ascend: walk the rejected lines once
        line = first + record + j
        while j < len(skipped) and skipped[j] <= line:
            j, line = j + 1, line + 1
        out.append(Reject(key, line, column, "CAST", f"'{value}' is not a timestamp", None))
    return out


def refuse(key: str, scanned: Scan, spec: FilesConfig, message: str) -> Converted:
    """A file none of whose lines can be read as the table's (a header naming columns
    the table does not have): every line rejected, the reason on line 1."""
    rows = max(scanned.lines - (1 if spec.header else 0), 0)
    return Converted(key, scanned, 0, [Reject(key, 1, None, "HEADER", message, None)], rows)


def _truncated(key: str, scanned: Scan, spec: FilesConfig) -> Reject:
    data_lines = scanned.lines - (1 if spec.header else 0)
    return Reject(
        key, scanned.lines + 1, None, "TRUNCATED FILE",
        f"the gzip stream ends before its end marker after {max(data_lines, 0)} complete data lines: the file is cut "
        "short or still being written; none of its lines is loaded (upload it again whole)",
        None,
    )  # fmt: skip
