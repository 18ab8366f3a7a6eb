"""What every benchmark module shares: where things are, the PostgreSQL it reads, logging,
timing a command and running Python in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "scratch"
VENV_BIN = Path(sys.executable).parent
DB = os.environ.get("LOCKGATE_BENCH_DB", "lockgate_bench")
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("LOCKGATE_BENCH_USER", "postgres")}
PG_URI = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}"
#: The bench database as an Airflow connection (``AIRFLOW_CONN_<ID>``).
CONNECTION_URI = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{DB}"

#: How a figure was measured; every measure in the results names one of these.
WARM = "warm-session"  # one long-lived interpreter and Spark session, stages called directly
AS_USERS_RUN = "as users run it"  # Airflow processes started fresh, as a user's deployment runs them
REFERENCE = "reference"  # another tool doing the same work, each run in a fresh process


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def pg_connect(dbname: str = DB):
    import psycopg

    return psycopg.connect(**PG, dbname=dbname, autocommit=True)


def ensure_database() -> None:
    with pg_connect("postgres") as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{DB}"')


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """A new empty database ``name`` (one left over is dropped first), dropped after use;
    created after a checkpoint, so that no earlier work's dirty pages are written later."""
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    with pg_connect("postgres") as admin:
        admin.execute(drop)
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute("CHECKPOINT")
    try:
        yield name
    finally:
        with pg_connect("postgres") as admin:
            admin.execute(drop)


def row_count(table: str, dbname: str = DB) -> int:
    """Rows of ``table`` in the bench database or ``dbname`` (-1 when it does not exist)."""
    with pg_connect(dbname) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            return -1
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def timed(command: list[str] | str, *, env: dict | None = None, shell: bool = False) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, shell=shell, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def python_job(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it reports its own timings as JSON through
    ``emit()`` (a file, so that library chatter on stdout cannot get in the way)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", dir=WORK) as result:
        prelude = (
            "import json as _json, os as _os\n"
            "def emit(value):\n"
            "    with open(_os.environ['BENCH_RESULT'], 'w') as _f:\n"
            "        _json.dump(value, _f)\n"
            # Not getrusage's ru_maxrss: Linux carries it across fork + exec, so a job
            # would report at least the size of the bench process that started it.
            "def peak_rss_kb(pid='self'):\n"
            "    with open(f'/proc/{pid}/status') as _s:\n"
            "        return next(int(l.split()[1]) for l in _s if l.startswith('VmHWM:'))\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
            env={**os.environ, **(env or {}), "BENCH_RESULT": result.name},
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark job failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.load(result)


def project_path(path: Path) -> str:
    """A path as results record it: relative to the project (results are committed and
    read on other machines), absolute only when it lies outside the project."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
