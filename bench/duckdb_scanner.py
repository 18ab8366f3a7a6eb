"""``duckdb_scanner``: DuckDB's postgres scanner copying a PostgreSQL table into a DuckDB
table file (``CREATE TABLE … AS SELECT * FROM`` the attached database), each run in a
fresh interpreter, timed from start to exit: the reference for PostgreSQL → DuckDB.
The extension is installed offline from the file the ``duckdb-extension-postgres-scanner``
package ships."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import DB, PG, REFERENCE
from lockgate.lake.duck import install_sql

CODE = """
import sys, time, duckdb
target, table, setup, attach = sys.argv[1:5]
conn = duckdb.connect(target)
conn.execute("SET enable_progress_bar = false")
conn.execute(setup)
conn.execute(attach)
started = time.perf_counter()
conn.execute(f"CREATE TABLE {table} AS SELECT * FROM pg.public.{table}")
copy = time.perf_counter() - started
rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
conn.close()
print(f"{copy} {rows}")
"""


@dataclass
class ScannerResult:
    seconds: float  # median wall time of the fresh process
    samples_s: list[float]
    copy_seconds: float  # median of the CREATE TABLE AS alone
    rows: int
    kind: str = REFERENCE


def run_once(work: Path, table: str) -> tuple[float, float, int]:
    target = work / "scanner.duckdb"
    target.unlink(missing_ok=True)
    setup = install_sql("duckdb_extension_postgres_scanner", "postgres_scanner", work / "duckdb_extensions")
    attach = f"ATTACH 'host={PG['host']} port={PG['port']} user={PG['user']} dbname={DB}' AS pg (TYPE postgres, READ_ONLY)"
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CODE, str(target), table, setup, attach],
                          capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"duckdb postgres scanner failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    copy, rows = proc.stdout.split()[-2:]
    target.unlink(missing_ok=True)
    return wall, float(copy), int(rows)


def bench_duckdb_scanner(work: Path, table: str, repeats: int) -> ScannerResult:
    runs = [run_once(work, table) for _ in range(repeats)]
    return ScannerResult(
        seconds=round(statistics.median(r[0] for r in runs), 3),
        samples_s=[round(r[0], 3) for r in runs],
        copy_seconds=round(statistics.median(r[1] for r in runs), 3),
        rows=runs[0][2],
    )
