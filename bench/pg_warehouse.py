"""``lockgate_load_pg*`` and ``pg_copy_single``: the bench table's sealed raw batch (one
full extract, sealed once by the extract stage) into a PostgreSQL warehouse.

- ``lockgate_load_pg``: Lockgate's load stage (:func:`lockgate.pipeline.load_stage`,
  ``warehouse.load_files`` through ``warehouse.connect(settings)``) with
  ``LOCKGATE_WAREHOUSE_CONN_ID`` set, the table's ``load_parallelism`` unset (the
  default split: N = the cores, within ``LOCKGATE_WAREHOUSE_MAX_CONNECTIONS``): DuckDB
  writes N CSV parts, N connections ``COPY`` them into an unlogged staging table, one
  transaction applies it. Each load runs in a fresh interpreter whose imports are done
  before the clock starts; only the ``load_stage`` call is timed (*warm-session*).
- ``lockgate_load_pg_1``: the same with ``load_parallelism: 1``.
- ``pg_copy_single``: the reference: the same rows as one CSV file (written once by
  DuckDB from the batch's Parquet files, as Lockgate writes its parts, not timed) loaded
  by one ``psql \\copy … FROM`` into a plain table of the same column types. Timed: the
  whole ``psql`` process (start, connect, read and send the file, COPY, commit).

Every repeat of every measure gets a fresh database (after a checkpoint), and the
measures take turns within each repeat, so that a noisy spell hits them alike. The
Lockgate loads also say where their time went (seconds by the load's parts: the DuckDB
export of the parts, the parallel ``COPY``, then each kind of SQL statement).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from benchlib import PG, REFERENCE, WARM, fresh_database, log, pg_connect, python_job, row_count, timed
from report import Target

MEASURES = ("lockgate_load_pg", "lockgate_load_pg_1", "pg_copy_single")
#: A Lockgate measure → the table options of its load (``{}``: the default split).
SPLITS = {"lockgate_load_pg": {}, "lockgate_load_pg_1": {"load_parallelism": 1}}
#: ratio → (numerator, denominator, target, how measured).
RATIOS = {
    "lockgate_load_pg/lockgate_load_pg_1": ("lockgate_load_pg", "lockgate_load_pg_1", 0.8, WARM),
    "lockgate_load_pg/pg_copy_single": ("lockgate_load_pg", "pg_copy_single", None, f"{WARM} / {REFERENCE}"),
}  # fmt: skip
DATABASE = "lockgate_bench_wh"
CONN_ID = "lockgate_bench_wh"
SINGLE_TABLE = "single_copy"
SINGLE_TIMED = "the psql process: start, connect, \\copy of the one CSV file into a plain logged table, commit"

LOAD_JOB = """
    import collections, functools, json, os, time
    from datetime import UTC, datetime
    from lockgate import pipeline, warehouse
    from lockgate.config import parse_source
    from lockgate.pipeline import RunInfo
    from lockgate.settings import load_settings
    from lockgate.warehouse import postgres
    import duckdb, psycopg  # imported before the clock starts, as in a long-running worker
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    spent, loaded = collections.defaultdict(float), []
    def clock(owner, name, label, keep=None):
        inner = getattr(owner, name)
        @functools.wraps(inner)
        def clocked(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = inner(*args, **kwargs)
            finally:
                spent[label(args)] += time.perf_counter() - started
            if keep is not None:
                keep.append(result)
            return result
        setattr(owner, name, clocked)
    clock(postgres.ParallelCopy, "_export", lambda a: "export")
    clock(postgres.ParallelCopy, "_copy", lambda a: "copy")  # its ANALYZE is counted apart below
    clock(postgres.PostgresWarehouse, "execute", lambda a: a[1].split(None, 1)[0].upper())
    clock(warehouse, "load_files", lambda a: "load_files", loaded)
    settings = load_settings()
    config = parse_source(json.loads(os.environ["BENCH_CONFIG"]), "bench.yml")
    table = config.tables[0]
    run = RunInfo(run_id="bench_pg", interval_start=datetime(2026, 1, 1, tzinfo=UTC),
                  interval_end=datetime(2026, 1, 2, tzinfo=UTC), full_refresh=True)
    started = time.perf_counter()
    pipeline.load_stage(config, table, run, os.environ["BENCH_RAW_PATH"], settings=settings)
    seconds = time.perf_counter() - started
    spent.pop("load_files")  # the sum of most of the others
    spent["copy"] -= spent.get("ANALYZE", 0.0)
    spent["other"] = seconds - sum(spent.values())
    emit({"seconds": seconds, "rows": loaded[0]["rows_loaded"], "parts": loaded[0]["parts"],
          "n": postgres.copy_parallelism(settings, table.load_parallelism), "spent_s": spent})
"""


def run_lockgate(name: str, database: str, raw_path: Path, job_env: Callable[..., dict]) -> dict:
    env = {
        **job_env(**SPLITS[name]), "BENCH_RAW_PATH": str(raw_path), "LOCKGATE_WAREHOUSE_CONN_ID": CONN_ID,
        f"AIRFLOW_CONN_{CONN_ID.upper()}": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{database}",
    }  # fmt: skip
    return python_job(LOAD_JOB, env)


def run_single_copy(database: str, csv: Path, create: str) -> dict:
    with pg_connect(database) as conn:
        conn.execute(create)
    command = ["psql", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-d", database, "-q",
               "-v", "ON_ERROR_STOP=1", "-c", f"\\copy {SINGLE_TABLE} FROM '{csv}' WITH (FORMAT csv)"]  # fmt: skip
    seconds = timed(command, env={**os.environ, "PGTZ": "UTC"})
    return {"seconds": seconds, "rows": row_count(SINGLE_TABLE, database)}


def single_csv(raw_path: Path, out: Path) -> tuple[Path, str]:
    """The batch's rows as one CSV file, as Lockgate writes its parts (every field quoted,
    UTC), and the ``CREATE TABLE`` of a plain table of Lockgate's column types."""
    import duckdb
    from lockgate import lake
    from lockgate.identifiers import sql_ident, sql_text
    from lockgate.warehouse.postgres import pg_type
    from lockgate.warehouse.schema import wanted_types

    manifest = lake.read_manifest(raw_path)
    types = wanted_types("bench", SINGLE_TABLE, manifest["schema"])
    files = ", ".join(sql_text(f) for f in lake.data_files(raw_path, manifest))
    out.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"COPY (SELECT {', '.join(sql_ident(c) for c in types)} FROM read_parquet([{files}])) "
                     f"TO {sql_text(str(out))} (FORMAT csv, HEADER false, FORCE_QUOTE *)")  # fmt: skip
    columns = ", ".join(f"{sql_ident(c)} {pg_type(t)}" for c, t in types.items())
    return out, f"CREATE TABLE {SINGLE_TABLE} ({columns})"


@dataclasses.dataclass
class PgRuns:
    """Each measure's runs (``seconds``, ``rows``; Lockgate's also ``n``, ``parts``, ``spent_s``)."""

    rows: int = 0
    csv_bytes: int = 0
    runs: dict[str, list[dict]] = dataclasses.field(default_factory=dict)

    @property
    def samples(self) -> dict[str, list[float]]:
        return {name: [r["seconds"] for r in runs] for name, runs in self.runs.items()}

    def as_json(self) -> dict:
        if not self.runs:
            return {}
        section: dict = {"rows": self.rows, "single_csv_bytes": self.csv_bytes, "database": "a fresh one per repeat"}
        for name, runs in self.runs.items():
            section[name] = {"seconds": round(statistics.median(r["seconds"] for r in runs), 3),
                             "samples_s": [round(r["seconds"], 3) for r in runs], **_details(name, runs)}  # fmt: skip
        return {"pg_warehouse": section}

    def targets(self) -> dict[str, Target]:
        m = {name: statistics.median(samples) for name, samples in self.samples.items()}
        return {name: Target(m[a] / m[b], target, kind)
                for name, (a, b, target, kind) in RATIOS.items() if a in m and b in m}  # fmt: skip


def _details(name: str, runs: list[dict]) -> dict:
    if name not in SPLITS:
        return {"kind": REFERENCE, "timed": SINGLE_TIMED}
    labels = dict.fromkeys(k for r in runs for k in r["spent_s"])
    spent = {k: round(statistics.median(r["spent_s"].get(k, 0.0) for r in runs), 3) for k in labels}
    return {"kind": WARM, "load_parallelism": SPLITS[name].get("load_parallelism"), "split_n": runs[0]["n"],
            "parts": [r["parts"] for r in runs], "spent_s": spent}  # fmt: skip


def run_measures(wanted: set[str], repeats: int, raw_path: Path, work: Path, job_env: Callable[..., dict]) -> PgRuns:
    """The ``wanted`` measures on the sealed batch ``raw_path``, taking turns in each repeat;
    ``job_env(**table_options)`` is the environment of a Lockgate job on the bench table."""
    from lockgate import lake

    runs = PgRuns(rows=int(lake.read_manifest(raw_path)["rows"]))
    names = [m for m in MEASURES if m in wanted]
    if "pg_copy_single" in names:
        csv, create = single_csv(raw_path, work / "single.csv")
        runs.csv_bytes = csv.stat().st_size
    for i in range(repeats):
        for name in names:
            log(f"{name}: {runs.rows:,} rows into a fresh PostgreSQL database ({i + 1}/{repeats})")
            with fresh_database(DATABASE) as database:
                run = (run_single_copy(database, csv, create) if name == "pg_copy_single"
                       else run_lockgate(name, database, raw_path, job_env))  # fmt: skip
            if run["rows"] != runs.rows:
                raise RuntimeError(f"{name}: {run['rows']:,} rows loaded, the batch has {runs.rows:,}")
            runs.runs.setdefault(name, []).append(run)
    return runs
