"""One landing file → Parquet (lockgate.landing.convert): timestamps, line numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow.parquet as pq
from lockgate.config import FilesConfig
from lockgate.landing import convert

SCHEMA = {"id": "bigint", "at": "timestamp"}


def _convert(tmp_path, text: str, conn=None):
    path = tmp_path / "f.tsv"
    path.write_text(text, encoding="utf-8")
    spec = FilesConfig(pattern="*.tsv", schema=SCHEMA)
    conn = conn or duckdb.connect()
    out = tmp_path / "out.parquet"
    result = convert.convert(conn, path, "f.tsv", spec, SCHEMA, ["id", "at"], out, convert.scan(path, False))
    return result, pq.read_table(out).to_pylist()


def test_a_timestamp_without_offset_is_utc_whatever_the_connection_zone(tmp_path):
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'America/New_York'")
    _, rows = _convert(tmp_path, "id\tat\n1\t2026-03-01 10:00:00\n2\t2026-03-01T10:00:00+02:00\n", conn)
    assert [r["at"].astimezone(UTC) for r in rows] == [datetime(2026, 3, 1, 10, tzinfo=UTC),
                                                       datetime(2026, 3, 1, 8, tzinfo=UTC)]  # fmt: skip


def test_every_bad_timestamp_is_rejected_on_its_own_line(tmp_path):
    """A whole column in a wrong format, among lines the reader rejects itself."""
    lines = ["id\tat"]
    for i in range(3000):
        lines.append(f"{i}" if i % 1000 == 7 else f"{i}\t{'01/03/2026' if i % 2 else '2026-03-01T00:00:00Z'}")
    result, rows = _convert(tmp_path, "\n".join(lines) + "\n")
    bad = {r.line: r for r in result.rejects}
    assert len(rows) == 1500 and result.rows_in == 3000 and len(bad) == 1500
    for i in range(3000):
        line = i + 2  # the header is line 1
        if i % 1000 == 7:
            assert bad[line].error == "MISSING COLUMNS"
        elif i % 2:
            assert bad[line].error == "CAST" and bad[line].column == "at" and "01/03/2026" in bad[line].message
        else:
            assert line not in bad
    assert {r["id"] for r in rows} == set(range(0, 3000, 2))
