"""One end-to-end run through real Airflow: ``lockgate demo`` builds the shop source (its
database and its click-stream files in a landing zone) and runs ``ingest_shop`` with
``airflow dags test`` for consecutive daily intervals; then an older interval is run
again and the warehouse, the click-stream rows and the landing ledger must not change.
It runs with a local lake and with an S3 lake (moto's server), and both warehouses end
with the same checksums; and with a local lake and a PostgreSQL warehouse, which ends
with the same rows per table (its checksums are PostgreSQL's own, so they differ)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The tables read from the demo database, and the one read from its landing zone.
DB_TABLES = ["customers", "order_items", "orders", "payments", "products"]
TABLES = sorted([*DB_TABLES, "clicks"])
FILES_PER_DAY = 4


def lockgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).with_name("lockgate")
    return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=1200, check=False)


#: Each lake's warehouse fingerprint after its demo, to compare the lakes (DuckDB warehouses).
FINGERPRINTS: dict[str, dict[str, tuple[int, str]]] = {}
#: Each variant's rows per table after its demo, to compare the warehouses.
ROW_COUNTS: dict[str, dict[str, int]] = {}


#: The S3 variant's connection (its own id: the session's s3_server fixture owns lockgate_lake).
E2E_CONN = "e2e_lake"


@pytest.fixture(scope="module")
def moto_server_process():
    """``moto_server`` as the README starts it for a local try, on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    connection = {"conn_type": "aws", "login": "e2e-key", "password": "e2e-secret-7d1c",
                  "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}}  # fmt: skip
    os.environ[f"AIRFLOW_CONN_{E2E_CONN.upper()}"] = json.dumps(connection)  # the test reads the lake too
    yield
    os.environ.pop(f"AIRFLOW_CONN_{E2E_CONN.upper()}", None)
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(params=["local", "s3", "pg_warehouse"])
def demo_env(request, tmp_path_factory):
    """The demo's environment: a local or an S3 lake and the DuckDB warehouse, or
    (``pg_warehouse``) a local lake and a fresh PostgreSQL database as the warehouse
    (the fixture's ``LOCKGATE_WAREHOUSE_CONN_ID`` and ``AIRFLOW_CONN_*``, in the
    environment the demo and its Airflow processes inherit)."""
    root = tmp_path_factory.mktemp(f"e2e-{request.param}")
    lake = {"LOCKGATE_LAKE_ROOT": str(root / "lake")}
    if request.param == "pg_warehouse":
        request.getfixturevalue("pg_warehouse")
    if request.param == "s3":
        request.getfixturevalue("moto_server_process")
        lake = {"LOCKGATE_LAKE_ROOT": "s3://lockgate-lake/lake", "LOCKGATE_LAKE_CONN_ID": E2E_CONN}
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(PROJECT_ROOT),
        "LOCKGATE_STATE_DIR": str(root / "state"),
        "AIRFLOW_HOME": str(root / "airflow"),
        **lake,
        "LOCKGATE_STAGING_DIR": str(root / "staging"),
        "LOCKGATE_WAREHOUSE": str(root / "warehouse" / "warehouse.duckdb"),
        # The demo writes its click stream here (landing: shop), and Airflow's tasks read it
        # through the environment `lockgate airflow-env` gives them.
        "LOCKGATE_LANDING_ROOT": str(root / "landing"),
    }
    return root, env


#: The landing ledger without the run that read a file last (a re-run reads its
#: interval's files again and becomes that run): what must not change.
LEDGER_SQL = (
    "SELECT file_key, size, modified, etag, sha256, interval_start, interval_end, rows_in, rows_parsed, rows_rejected, "
    "status, taken_at FROM lockgate.landed_files WHERE source = 'shop' ORDER BY file_key"
)


def landing_files(root: Path) -> dict[str, tuple[int, float, bytes]]:
    """The demo's click-stream files: data lines, modification time, bytes."""
    zone = root / "landing" / "shop"
    return {
        str(p.relative_to(zone)): (gzip.decompress(p.read_bytes()).count(b"\n") - 1, p.stat().st_mtime, p.read_bytes())
        for p in sorted(zone.rglob("*")) if p.is_file()
    }  # fmt: skip


def lake_root(env):
    """The demo's lake as the test reads it: a folder, or the S3 prefix (through the connection)."""
    from lockgate.lake import s3

    location = env["LOCKGATE_LAKE_ROOT"]
    if not location.startswith("s3://"):
        return Path(location)
    return s3.root(s3.parse_url("LOCKGATE_LAKE_ROOT", location), env["LOCKGATE_LAKE_CONN_ID"])


def pg_warehouse(env) -> bool:
    return bool(env.get("LOCKGATE_WAREHOUSE_CONN_ID"))


@contextmanager
def warehouse_sql(env) -> Iterator:
    """The demo's warehouse for the test's queries: the DuckDB file (read-only) or the
    PostgreSQL database of its Airflow connection (in UTC, as Lockgate's sessions are)."""
    if pg_warehouse(env):
        import psycopg

        uri = env[f"AIRFLOW_CONN_{env['LOCKGATE_WAREHOUSE_CONN_ID'].upper()}"]
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            yield conn
    else:
        import duckdb

        with duckdb.connect(env["LOCKGATE_WAREHOUSE"], read_only=True) as conn:
            yield conn


def variant(env) -> str:
    """``local``, ``s3`` (the lake, with the DuckDB warehouse) or ``pg_warehouse``."""
    if pg_warehouse(env):
        return "pg_warehouse"
    return "s3" if env["LOCKGATE_LAKE_ROOT"].startswith("s3://") else "local"


def fingerprint(env) -> dict[str, tuple[int, str]]:
    out = lockgate(env, "fingerprint", "shop")
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.strip().splitlines()]
    return {name.removeprefix("shop."): (int(count), digest) for name, count, digest in rows}


# Read the demo's dag runs through Airflow's own ORM (the metadata DB may be SQLite or
# PostgreSQL), in a subprocess with the demo's Airflow environment.
_DAG_RUNS_SCRIPT = """
import json
from sqlalchemy import select
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session

with create_session() as session:
    runs = session.scalars(select(DagRun).where(DagRun.dag_id == "ingest_shop")).all()
    fields = ("logical_date", "data_interval_start", "data_interval_end", "start_date", "end_date")
    rows = [
        {"run_id": r.run_id, "state": str(r.state), **{f: getattr(r, f).isoformat() for f in fields}}
        for r in runs
    ]
print("DAG_RUNS=" + json.dumps(rows))
"""


def dag_runs(env) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", _DAG_RUNS_SCRIPT],
        env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags")},
        capture_output=True, text=True, timeout=300, check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("DAG_RUNS="))
    runs = json.loads(line.removeprefix("DAG_RUNS="))
    for run in runs:
        for key in ("logical_date", "data_interval_start", "data_interval_end", "start_date", "end_date"):
            run[key] = datetime.fromisoformat(run[key])
    return sorted(runs, key=lambda r: r["data_interval_start"])


def assert_runs_look_real(runs: list[dict], days: list[str], window: tuple[datetime, datetime]) -> None:
    """Each run ingested its day and shows, in the UI, when it really ran and how long it took."""
    assert [r["data_interval_start"].date().isoformat() for r in runs] == days
    for run in runs:
        start, end = run["data_interval_start"], run["data_interval_end"]
        assert end - start == timedelta(days=1) and start.time() == datetime.min.time(), run
        assert window[0] <= run["start_date"] <= run["end_date"] <= window[1], (run, window)
        assert run["end_date"] - run["start_date"] < timedelta(minutes=10), run


def test_demo_runs_two_days_through_airflow_then_a_rerun_changes_nothing(demo_env):
    root, env = demo_env
    ready = lockgate(env, "lake-init")  # as the README's S3 lake steps run it
    assert ready.returncode == 0, ready.stderr[-3000:]
    if env["LOCKGATE_LAKE_ROOT"].startswith("s3://"):
        assert "(bucket created, versioning on; Airflow connection 'e2e_lake')" in ready.stdout, ready.stdout
        assert "(bucket exists, versioning on" in lockgate(env, "lake-init").stdout
    first_started = datetime.now(UTC)
    first = lockgate(env, "demo", "--scale", "0.02", "--days", "2")
    first_ended = datetime.now(UTC)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "2026-01-01..2026-01-02" in out and "2026-01-02..2026-01-03" in out
    assert out.count("[published]") == 2 * len(TABLES)
    assert f"demo landing zone: {root / 'landing' / 'shop'} ({2 * FILES_PER_DAY} click-stream files" in out
    # The summary shows the landing files each interval took, beside the tables' runs.
    assert "landing files taken (lockgate.landed_files):" in out
    for day in ("2026-01-01", "2026-01-02"):
        assert f"clicks/{day}/part-0.tsv.gz .. clicks/{day}/part-3.tsv.gz  [taken]" in out, out
    assert "shop.clicks" in out and "read again" not in out
    assert out.count("passed (") == 2 * len(TABLES) and "failed" not in out
    if pg_warehouse(env):
        assert f"warehouse : PostgreSQL (Airflow connection '{env['LOCKGATE_WAREHOUSE_CONN_ID']}')" in out, out
        assert not (root / "warehouse" / "warehouse.duckdb").exists()  # nothing went to a DuckDB file
    else:
        assert str(root / "warehouse" / "warehouse.duckdb") in out
    assert env["LOCKGATE_LAKE_ROOT"] in out
    lake = lake_root(env)

    before = fingerprint(env)
    assert sorted(before) == TABLES
    files = landing_files(root)
    assert sorted(files) == [f"clicks/2026-01-0{d}/part-{n}.tsv.gz" for d in (1, 2) for n in range(FILES_PER_DAY)]
    assert all(count > 0 for count, _ in before.values())

    # The warehouse equals the source: every row, every key exactly once.
    source_db = root / "state" / "demo" / "shop.db"
    with warehouse_sql(env) as conn:
        counts = dict(
            conn.execute(
                "SELECT table_name, CAST(sum(rows_loaded) AS BIGINT) FROM lockgate.runs WHERE source = 'shop' GROUP BY 1"
            ).fetchall()
        )
        statuses = conn.execute("SELECT DISTINCT status, validation_status FROM lockgate.runs").fetchall()
        watermarks = dict(conn.execute("SELECT table_name, watermark::VARCHAR FROM lockgate.state").fetchall())
        ledger = conn.execute(LEDGER_SQL).fetchall()
        clicks_per_file = dict(conn.execute("SELECT _lockgate_file, count(*) FROM shop.clicks GROUP BY 1").fetchall())
    assert statuses == [("published", "passed")]
    assert watermarks["orders"].startswith("2026-01-03")
    import sqlite3

    with sqlite3.connect(source_db) as src:
        for table in DB_TABLES:
            assert before[table][0] == src.execute(f"SELECT count(*) FROM {table}").fetchone()[0], table
    assert counts["order_items"] == before["order_items"][0]  # append: each row loaded exactly once
    # ...and the landing zone: every file taken once, by its own day's run, every line loaded.
    assert clicks_per_file == {key: lines for key, (lines, _, _) in files.items()}
    assert counts["clicks"] == before["clicks"][0] == sum(clicks_per_file.values())
    # (file_key, interval_start's day, rows_rejected, status)
    assert [(r[0], r[5].astimezone(UTC).date().isoformat(), r[9], r[10]) for r in ledger] == [
        (key, key.split("/")[1], 0, "taken") for key in sorted(files)
    ]

    # The lake keeps one sealed, verified folder per table, interval and run, and a quality report.
    manifests = sorted((lake / "raw" / "shop").glob("*/*/*/_manifest.json"), key=str)
    assert len(manifests) == 2 * len(TABLES)
    for path in manifests:
        manifest = json.loads(path.read_text())
        if manifest.get("source_engine") == "files":  # one Parquet file per landing file
            landed = manifest["landing"]["files"]
            assert len(landed) == len(manifest["files"]) == FILES_PER_DAY and manifest["rows_rejected"] == 0
            assert manifest["rows"] == sum(f["rows_parsed"] for f in landed)
        else:
            assert manifest["rows"] == sum(f["rows"] for f in manifest["files"])
    assert len(list((lake / "quality" / "shop").glob("*/*.json"))) == 2 * len(TABLES)
    # Great Expectations Data Docs: one HTML page per table and run, named in the task log.
    docs = lake / "quality" / "shop" / "docs"
    for table in TABLES:
        pages = list(docs.glob(f"validations/shop/{table}/**/*.html"))
        assert len(pages) == 2, table
        assert "<html" in pages[0].read_text(encoding="utf-8").lower()
    logs = "".join(p.read_text(encoding="utf-8") for p in (root / "state" / "logs").glob("demo-*.log"))
    assert "Data Docs page" in logs

    # Airflow recorded both runs as successful.
    airflow = Path(sys.executable).with_name("airflow")
    runs = subprocess.run(
        [str(airflow), "dags", "list-runs", "ingest_shop", "-o", "json"],
        env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags")},
        capture_output=True, text=True, timeout=300, check=True,
    )
    # Airflow may print log lines (e.g. "[warning ] ...") before the JSON document.
    document = next(line for line in reversed(runs.stdout.splitlines()) if line.startswith("[{") or line == "[]")
    states = [r["state"] for r in json.loads(document)]
    assert states == ["success", "success"]
    # ...with their real start (not the logical date) and duration, and the intervals they ingested.
    assert_runs_look_real(dag_runs(env), ["2026-01-01", "2026-01-02"], (first_started, first_ended))

    # Re-running the first (older) interval after the second must leave every table identical.
    again = lockgate(env, "demo", "--scale", "0.02", "--days", "1")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert fingerprint(env) == before
    # The demo wrote the first day's click stream again, byte for byte and with the same
    # times: the rerun read that day's four files again and took nothing new.
    assert f"({FILES_PER_DAY} click-stream files" in again.stdout and f"0 written, {FILES_PER_DAY} already there" in again.stdout
    assert "clicks/2026-01-01/part-0.tsv.gz .. clicks/2026-01-01/part-3.tsv.gz  [taken, 4 read again" in again.stdout
    assert landing_files(root) == files
    with warehouse_sql(env) as conn:
        assert conn.execute(LEDGER_SQL).fetchall() == ledger
        assert dict(conn.execute("SELECT _lockgate_file, count(*) FROM shop.clicks GROUP BY 1").fetchall()) == clicks_per_file
    ROW_COUNTS[variant(env)] = {table: count for table, (count, _) in before.items()}
    if pg_warehouse(env):
        # Fingerprints are each warehouse's own checksum: compare the rows per table.
        if "local" in ROW_COUNTS:
            assert ROW_COUNTS["pg_warehouse"] == ROW_COUNTS["local"], "the PostgreSQL warehouse differs from DuckDB's"
    else:
        FINGERPRINTS[variant(env)] = before
        if len(FINGERPRINTS) == 2:
            assert FINGERPRINTS["s3"] == FINGERPRINTS["local"], "the S3 lake's warehouse differs from the local lake's"
    # The rerun replaced the first interval's run; both still look real.
    runs = dag_runs(env)
    assert_runs_look_real(runs, ["2026-01-01", "2026-01-02"], (first_started, datetime.now(UTC)))
    assert runs[0]["start_date"] > first_ended  # the first interval's run is the rerun
