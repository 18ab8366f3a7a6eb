"""``make bench``: Lockgate side by side with what a user would otherwise pick.

One run measures, on the machine's PostgreSQL and the same table, with repeats and
medians: Lockgate's extract (Spark, warm session), its validation and its whole
pipeline (extract + validate + load into DuckDB), the same pipeline with the lake in
S3 on a local moto server (``lockgate_pipeline_s3``, :mod:`s3_lake`), ``psql`` binary
COPY (the limit reference), ConnectorX and dlt ``sql_table`` (pyarrow backend) — each
writing the table to Parquet except COPY, which streams to /dev/null. Then the fixed overhead of
a source with many tiny tables, the cost of an interval with few changed rows, and
the memory of extracting a table larger than the Spark driver's memory. All of these
run Lockgate's stages in one warm interpreter and Spark session (*warm-session*).

Then what users live with (*as users run it*), in the same run: ``dag_full_load``, a
fresh ``airflow dags test`` process loading TPC-H ``lineitem`` SF1 in full
(:mod:`dag_full_load`), against ``duckdb_scanner`` (:mod:`duckdb_scanner`) and
ConnectorX on the same table; and ``scheduler_small_tables``, one interval of 20 tables
of 100 rows run by ``airflow standalone`` (:mod:`scheduler_small_tables`).

And the PostgreSQL warehouse (``lockgate_load_pg*``, :mod:`pg_warehouse`): the bench table's
sealed batch loaded by Lockgate's load stage into a fresh PostgreSQL database, with the
default split of parallel ``COPY`` streams and with one, against one ``COPY`` of the same
rows as one CSV file (``pg_copy_single``).

And the files landing zone (``files_*``, :mod:`files_landing`): 16 gzip TSV files of a
click stream (over 1 GiB uncompressed) into the raw lake by ``run_files_extract``, against
DuckDB's own ``read_csv`` → Parquet, and the same rows as one big gzip file.

Results: ``bench/results/latest.json`` (+ ``latest.md`` and ``latest.png``);
``--only`` runs a subset and prints it. Figures on a shared machine are noisy; compare
the ratios within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import files_landing
import pg_warehouse
import s3_lake
import tpch_lineitem
from benchlib import (
    AS_USERS_RUN,
    DB,
    PG,
    REFERENCE,
    RESULTS,
    WARM,
    WORK,
    ensure_database,
    log,
    pg_connect,
    python_job,
    timed,
)  # fmt: skip
from dag_full_load import DagFullLoad, bench_dag_full_load
from duckdb_scanner import ScannerResult, bench_duckdb_scanner
from report import KINDS, LAKE_RATIO, Target, write_results
from scheduler_small_tables import SchedulerSmallTables, bench_scheduler_small_tables

TABLE = "bench_lineitem"
DAY = datetime(2026, 1, 1, tzinfo=UTC)
#: The measures of the bench table (warm session and references), and those of TPC-H
#: lineitem and the scheduler (as users run them, and their references).
PG_MEASURES = pg_warehouse.MEASURES
TABLE_MEASURES = (
    "copy_binary", "connectorx", "dlt_pyarrow", "lockgate", "lockgate_pipeline_s3", "incremental", "small_tables", "memory",
    *PG_MEASURES,
)  # fmt: skip
#: The stages ``LOCKGATE_JOB`` times (``pipeline``: all of them).
STAGES = ("extract", "validate", "load", "pipeline")
USER_MEASURES = (
    "connectorx_lineitem", "duckdb_scanner", "dag_full_load", "dag_full_load_in_process", "scheduler_small_tables",
    "scheduler_levers",
)  # fmt: skip
FILES_MEASURES = files_landing.MEASURES
ALL_MEASURES = TABLE_MEASURES + USER_MEASURES + FILES_MEASURES
#: The deployment's fixed-cost levers, each turned off alone beside the default run.
SCHEDULER_LEVERS = {
    "without_spark_connect": {"LOCKGATE_SPARK_CONNECT_PORT": "off"},  # a Spark JVM in every extract task
    "without_preload": {"LOCKGATE_PRELOAD": "0"},  # every task imports GX, the task SDK, ...
}

CREATE = f"""
DROP TABLE IF EXISTS {TABLE};
CREATE UNLOGGED TABLE {TABLE} AS
SELECT g::bigint                                   AS l_id,
       (g % 1500000 + 1)::bigint                   AS l_orderkey,
       (g % 200000 + 1)::integer                   AS l_partkey,
       (g % 10000 + 1)::integer                    AS l_suppkey,
       (g % 7 + 1)::integer                        AS l_linenumber,
       ((g % 50) + 1)::numeric(12,2)               AS l_quantity,
       round((900 + (g % 100000) / 10.0)::numeric, 2)::numeric(12,2) AS l_extendedprice,
       ((g % 11) / 100.0)::numeric(12,2)           AS l_discount,
       ((g % 9) / 100.0)::numeric(12,2)            AS l_tax,
       (ARRAY['A','N','R'])[g % 3 + 1]             AS l_returnflag,
       (ARRAY['F','O'])[g % 2 + 1]                 AS l_linestatus,
       DATE '1992-01-01' + (g % 2500)::integer     AS l_shipdate,
       DATE '1992-01-31' + (g % 2500)::integer     AS l_commitdate,
       (ARRAY['TRUCK','MAIL','SHIP','AIR','RAIL','FOB','REG AIR'])[g % 7 + 1] AS l_shipmode,
       'carefully final deposits ' || md5(g::text)  AS l_comment,
       TIMESTAMP '2025-12-31 00:00:00' + (g % 86400) * INTERVAL '1 second' AS updated_at
FROM generate_series(1, %(rows)s) AS g;
ALTER TABLE {TABLE} ADD PRIMARY KEY (l_id);
CREATE INDEX ON {TABLE} (updated_at);
ANALYZE {TABLE};
"""

SUITE = {
    "name": "bench.lineitem",
    "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": [
            "l_id", "l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity", "l_extendedprice",
            "l_discount", "l_tax", "l_returnflag", "l_linestatus", "l_shipdate", "l_commitdate", "l_shipmode",
            "l_comment", "updated_at"], "exact_match": False}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "l_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "l_id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "l_orderkey"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "l_quantity", "min_value": 0, "max_value": 100}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "l_discount", "min_value": 0, "max_value": 1}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "l_returnflag", "value_set": ["A", "N", "R"]}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "l_linestatus", "value_set": ["F", "O"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "updated_at"}},
    ],
}  # fmt: skip


def ensure_table(rows: int) -> int:
    ensure_database()
    with pg_connect(DB) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0]
        current = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] if exists else -1
        if current != rows:
            log(f"creating {TABLE} with {rows:,} rows in database {DB}")
            conn.execute(CREATE.replace("%(rows)s", str(int(rows))))
        size = conn.execute("SELECT pg_table_size(%s)", (TABLE,)).fetchone()[0]
    return int(size)


def bench_copy_binary(repeats: int) -> list[float]:
    command = ["psql", "-h", PG["host"], "-U", PG["user"], "-d", DB, "-q", "-c",
               f"\\copy (SELECT * FROM {TABLE}) TO '/dev/null' WITH (FORMAT binary)"]  # fmt: skip
    return [timed(command) for _ in range(repeats)]


def bench_connectorx(repeats: int, out: Path, table: str = TABLE, partition_on: str = "l_id") -> list[float]:
    code = f"""
        import json, time
        import connectorx as cx, pyarrow.parquet as pq
        started = time.perf_counter()
        table = cx.read_sql("postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}", "SELECT * FROM {table}",
                            return_type="arrow", partition_on="{partition_on}", partition_num={os.cpu_count() or 2})
        pq.write_table(table, "{out}/cx.parquet", compression="zstd")
        emit({{"seconds": time.perf_counter() - started, "rows": table.num_rows}})
    """
    return [python_job(code)["seconds"] for _ in range(repeats)]


def bench_dlt(repeats: int, out: Path) -> list[float]:
    code = f"""
        import json, time, shutil
        import dlt
        from dlt.sources.sql_database import sql_table
        started = time.perf_counter()
        source = sql_table(credentials="postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}", table="{TABLE}",
                           backend="pyarrow", chunk_size=100000)
        pipeline = dlt.pipeline(pipeline_name="lockgate_bench", destination=dlt.destinations.filesystem("{out}/dlt"),
                                pipelines_dir="{out}/dlt_state", dataset_name="bench")
        info = pipeline.run(source, loader_file_format="parquet", write_disposition="replace")
        emit({{"seconds": time.perf_counter() - started}})
    """
    times = []
    for _ in range(repeats):
        shutil.rmtree(out / "dlt", ignore_errors=True)
        shutil.rmtree(out / "dlt_state", ignore_errors=True)
        times.append(python_job(code, env={"RUNTIME__LOG_LEVEL": "WARNING"})["seconds"])
    return times


LOCKGATE_JOB = """
    import json, os, time
    from datetime import datetime, UTC
    from lockgate import lake, pipeline
    from lockgate.config import parse_source
    from lockgate.pipeline import RunInfo
    from lockgate.settings import load_settings
    from lockgate.spark import get_spark
    settings = load_settings()
    spark = get_spark("lockgate-bench")
    spark.range(1).count()  # the session is warm, as in a long-running worker or Spark Connect
    import great_expectations  # imported once per worker process, like Spark's session
    from spark_jobs.arrow_reader import warm_up
    warm_up(spark, os.cpu_count() or 2)  # Python workers up, as in a long-running session
    config = parse_source(json.loads(os.environ["BENCH_CONFIG"]), "bench.yml")
    table = config.tables[0]
    results = []
    for i in range(int(os.environ["BENCH_REPEATS"])):
        lake.remove(settings.lake_root)  # a local folder or an S3 prefix
        if os.path.exists(settings.warehouse):
            os.remove(settings.warehouse)
        run = RunInfo(run_id=f"bench_{i}", interval_start=datetime(2026, 1, 1, tzinfo=UTC),
                      interval_end=datetime(2026, 1, 2, tzinfo=UTC), full_refresh=os.environ.get("BENCH_FULL") == "1")
        t0 = time.perf_counter()
        extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
        t1 = time.perf_counter()
        if os.environ.get("BENCH_STAGES") == "extract":
            results.append({"extract": t1 - t0, "rows": extracted["rows"]})
            continue
        pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings, spark=spark)
        t2 = time.perf_counter()
        pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
        pipeline.publish_stage(config, table, run, extracted["raw_path"], settings=settings)
        t3 = time.perf_counter()
        results.append({"extract": t1 - t0, "validate": t2 - t1, "load": t3 - t2, "pipeline": t3 - t0,
                        "rows": extracted["rows"]})
    jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    emit({"runs": results, "self_rss_kb": peak_rss_kb(), "jvm_hwm_kb": peak_rss_kb(jvm_pid)})
"""


def lockgate_env(work: Path, suite_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_BENCH_PG": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{DB}",
        "LOCKGATE_LAKE_ROOT": str(work / "lake"),
        "LOCKGATE_WAREHOUSE": str(work / "warehouse" / "warehouse.duckdb"),
        "LOCKGATE_EXPECTATIONS_DIR": str(suite_dir),
        **extra,
    }


def bench_config(**table) -> str:
    return json.dumps({
        "source": "bench", "connection": "bench_pg", "start_date": "2026-01-01",
        "tables": [{"name": TABLE, "primary_key": ["l_id"], "mode": "merge", "cursor": "updated_at",
                    "expectations": "bench/lineitem", **table}],
    })  # fmt: skip


def bench_lockgate(
    repeats: int, work: Path, suite_dir: Path, lake: dict[str, str] | None = None
) -> dict[str, list[float]]:
    """Full loads of the bench table; ``lake`` is the environment of another lake than
    the local folder ``work/lake`` (:func:`s3_lake.moto_lake`)."""
    env = lockgate_env(work, suite_dir, BENCH_CONFIG=bench_config(), BENCH_REPEATS=str(repeats), BENCH_FULL="1",
                       **(lake or {}))  # fmt: skip
    runs = python_job(LOCKGATE_JOB, env)["runs"]
    return {k: [r[k] for r in runs] for k in STAGES}


def bench_lockgate_s3(repeats: int, work: Path, suite_dir: Path) -> dict[str, list[float]]:
    """:func:`bench_lockgate` with the lake in a bucket of a moto server started for it."""
    with s3_lake.moto_lake(work / "staging") as lake:
        return bench_lockgate(repeats, work, suite_dir, lake)


def lake_ratio(local_pipeline: list[float], s3_pipeline: list[float]) -> Target:
    """lockgate_pipeline_s3 / lockgate_pipeline (no target: what the S3 lake costs)."""
    return Target(statistics.median(s3_pipeline) / statistics.median(local_pipeline), None, WARM)


def bench_incremental(work: Path, suite_dir: Path, changed: int) -> dict:
    """An interval in which ``changed`` rows moved: only they are read and merged."""
    with pg_connect(DB) as conn:
        conn.execute(
            f"UPDATE {TABLE} SET l_comment = l_comment || '!', updated_at = TIMESTAMP '2026-01-01 12:00:00' "
            f"WHERE l_id IN (SELECT l_id FROM {TABLE} ORDER BY l_id DESC LIMIT %s)", (changed,))  # fmt: skip
        try:
            env = lockgate_env(work, suite_dir, BENCH_CONFIG=bench_config(), BENCH_REPEATS="3", BENCH_FULL="0")
            runs = python_job(LOCKGATE_JOB, env)["runs"]
        finally:
            conn.execute(
                f"UPDATE {TABLE} SET l_comment = rtrim(l_comment, '!'), "
                "updated_at = TIMESTAMP '2025-12-31 00:00:00' + (l_id % 86400) * INTERVAL '1 second' "
                "WHERE updated_at >= TIMESTAMP '2026-01-01'"
            )
    return {"changed_rows": runs[0]["rows"], "seconds": statistics.median(r["pipeline"] for r in runs)}


def bench_small_tables(work: Path, count: int) -> dict:
    with pg_connect(DB) as conn:
        for i in range(count):
            conn.execute(f"DROP TABLE IF EXISTS tiny_{i:02d}")
            conn.execute(
                f"CREATE TABLE tiny_{i:02d} AS SELECT g AS id, 'row ' || g AS label, "
                "TIMESTAMP '2026-01-01 00:00:00' + g * INTERVAL '1 minute' AS updated_at FROM generate_series(1, 100) g"
            )
    tables = [{"name": f"tiny_{i:02d}", "primary_key": ["id"], "mode": "merge", "cursor": "updated_at"} for i in range(count)]
    config = json.dumps({"source": "tiny", "connection": "bench_pg", "start_date": "2026-01-01", "tables": tables})
    code = """
        import json, os, time
        from datetime import datetime, UTC
        from lockgate import pipeline
        from lockgate.config import parse_source
        from lockgate.pipeline import RunInfo
        from lockgate.settings import load_settings
        from lockgate.spark import get_spark
        settings = load_settings()
        spark = get_spark("lockgate-bench")
        spark.range(1).count()
        import great_expectations  # imported once per worker, as in a long-running worker
        config = parse_source(json.loads(os.environ["BENCH_CONFIG"]), "tiny.yml")
        run = RunInfo(run_id="tiny", interval_start=datetime(2026, 1, 1, tzinfo=UTC),
                      interval_end=datetime(2026, 1, 2, tzinfo=UTC))
        started = time.perf_counter()
        for table in config.tables:
            extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
            pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings, spark=spark)
            pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
            pipeline.publish_stage(config, table, run, extracted["raw_path"], settings=settings)
        emit({"seconds": time.perf_counter() - started})
    """
    shutil.rmtree(work / "tiny", ignore_errors=True)
    env = lockgate_env(work / "tiny", work, BENCH_CONFIG=config)
    seconds = python_job(code, env)["seconds"]
    return {"tables": count, "rows_per_table": 100, "seconds": round(seconds, 2),
            "overhead_s_per_table": round(seconds / count, 3)}  # fmt: skip


def extract_only(work: Path, suite_dir: Path, **extra: str) -> dict:
    """One full extract of the bench table, its batch sealed in ``work/lake``."""
    env = lockgate_env(work, suite_dir, BENCH_CONFIG=bench_config(), BENCH_REPEATS="1", BENCH_FULL="1",
                       BENCH_STAGES="extract", **extra)  # fmt: skip
    return python_job(LOCKGATE_JOB, env)


def bench_memory(work: Path, suite_dir: Path, table_bytes: int, driver_memory: str) -> dict:
    job = extract_only(work / "memory", suite_dir, LOCKGATE_SPARK_DRIVER_MEMORY=driver_memory)
    runs = job["runs"]
    # The driver is the Spark JVM plus the Python process that drives it.
    peak_kb = job["jvm_hwm_kb"] + job["self_rss_kb"]
    return {"driver_memory": driver_memory, "table_bytes": table_bytes, "rows": runs[0]["rows"],
            "peak_rss_mb": round(peak_kb / 1024, 1), "jvm_peak_rss_mb": round(job["jvm_hwm_kb"] / 1024, 1),
            "seconds": round(runs[0]["extract"], 2)}  # fmt: skip


def bench_pg_warehouse(wanted: set[str], repeats: int, work: Path, suite_dir: Path) -> pg_warehouse.PgRuns:
    """The ``wanted`` PostgreSQL warehouse measures on a batch of the bench table sealed for them."""
    if not wanted:
        return pg_warehouse.PgRuns()
    from lockgate import lake

    log("PostgreSQL warehouse: sealing a full extract of the bench table (not timed)")
    extract_only(work / "pg", suite_dir)
    raw_path = lake.sealed_runs(work / "pg" / "lake", "bench", TABLE)[-1]
    return pg_warehouse.run_measures(
        wanted, repeats, raw_path, work / "pg",
        lambda **table: lockgate_env(work / "pg", suite_dir, BENCH_CONFIG=bench_config(**table)),
    )  # fmt: skip


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


@dataclasses.dataclass
class UserRuns:
    """TPC-H lineitem through a whole DAG run, its references, and the scheduler run."""

    lineitem_bytes: int | None = None
    connectorx_lineitem: list[float] | None = None
    duckdb_scanner: ScannerResult | None = None
    dag_full_load: DagFullLoad | None = None
    dag_full_load_in_process: DagFullLoad | None = None  # the server lever off
    scheduler_small_tables: SchedulerSmallTables | None = None
    scheduler_levers: dict[str, SchedulerSmallTables] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict:
        out: dict = {}
        if self.lineitem_bytes is not None:
            out["lineitem"] = {"table": tpch_lineitem.TABLE, "rows": tpch_lineitem.ROWS, "table_bytes": self.lineitem_bytes}
        if self.connectorx_lineitem:
            out["connectorx_lineitem"] = {"seconds": median(self.connectorx_lineitem), "kind": REFERENCE,
                                          "samples_s": [round(x, 3) for x in self.connectorx_lineitem]}  # fmt: skip
        for name in ("duckdb_scanner", "dag_full_load", "dag_full_load_in_process", "scheduler_small_tables"):
            if getattr(self, name) is not None:
                out[name] = dataclasses.asdict(getattr(self, name))
        if self.scheduler_levers:
            out["scheduler_levers"] = {
                name: {"seconds": run.seconds, "seconds_per_table": run.seconds_per_table, "env": SCHEDULER_LEVERS[name],
                       "kind": AS_USERS_RUN}
                for name, run in self.scheduler_levers.items()
            }  # fmt: skip
        return out

    def targets(self) -> dict[str, Target]:
        """The issue's targets on these measures (those measured in this run)."""
        full, scanner, cx, sched = self.dag_full_load, self.duckdb_scanner, self.connectorx_lineitem, self.scheduler_small_tables
        out = {}
        if full and scanner:
            out["dag_full_load/duckdb_scanner"] = Target(full.seconds / scanner.seconds, 2.5, f"{AS_USERS_RUN} / {REFERENCE}")
        if full and full.stages.extract and cx:
            out["lineitem_extract/connectorx_lineitem"] = Target(
                full.stages.extract / median(cx), 1.0, f"{AS_USERS_RUN} (extract stage of dag_full_load) / {REFERENCE}")
        if full and full.stages.extract and full.stages.validate:
            out["lineitem_validate/lineitem_extract"] = Target(
                full.stages.validate / full.stages.extract, 0.35, f"{AS_USERS_RUN} (stages of dag_full_load)")
        if sched:
            out["scheduler_small_tables_s_per_table"] = Target(sched.seconds_per_table, 3.0, AS_USERS_RUN)
        return out  # fmt: skip


def run_user_measures(wanted: set[str], args, work: Path) -> UserRuns:
    runs = UserRuns()
    if wanted & {"connectorx_lineitem", "duckdb_scanner", "dag_full_load", "dag_full_load_in_process"}:
        ensure_database()
        runs.lineitem_bytes = tpch_lineitem.ensure_lineitem()
    if "connectorx_lineitem" in wanted:
        log("ConnectorX on TPC-H lineitem")
        runs.connectorx_lineitem = bench_connectorx(args.repeats, work, tpch_lineitem.TABLE, "l_orderkey")
    if "duckdb_scanner" in wanted:
        log("DuckDB postgres scanner on TPC-H lineitem")
        runs.duckdb_scanner = bench_duckdb_scanner(work, tpch_lineitem.TABLE, args.repeats)
    if "dag_full_load" in wanted:
        log("dag_full_load: a full load of TPC-H lineitem with `airflow dags test`")
        runs.dag_full_load = bench_dag_full_load(WORK / "dag_full_load", runs.lineitem_bytes or 0)
    if "dag_full_load_in_process" in wanted:
        log("dag_full_load_in_process: the same without a Spark Connect server (Spark in the dags test process)")
        runs.dag_full_load_in_process = bench_dag_full_load(
            WORK / "dag_full_load_in_process", runs.lineitem_bytes or 0, in_process=True
        )
    if "scheduler_small_tables" in wanted:
        log(f"scheduler_small_tables: {args.scheduler_tables} tables through `airflow standalone`")
        ensure_database()
        runs.scheduler_small_tables = bench_scheduler_small_tables(WORK / "scheduler_small_tables", args.scheduler_tables)
    if "scheduler_levers" in wanted:
        ensure_database()
        for name, env in SCHEDULER_LEVERS.items():
            log(f"scheduler_small_tables {name}: {env}")
            runs.scheduler_levers[name] = bench_scheduler_small_tables(
                WORK / f"scheduler_small_tables_{name}", args.scheduler_tables, env
            )
    return runs


def partial_run(only: set[str], args, work: Path, suite_dir: Path) -> dict:
    """Some of the measures, for a quick look while tuning."""
    out: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                 "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    table_bytes = ensure_table(args.rows) if only & set(TABLE_MEASURES) else 0
    if "copy_binary" in only:
        out["copy_binary"] = bench_copy_binary(args.repeats)
    if "connectorx" in only:
        out["connectorx"] = bench_connectorx(args.repeats, work)
    if "dlt_pyarrow" in only:
        out["dlt_pyarrow"] = bench_dlt(args.repeats, work)
    if "lockgate" in only:
        out["lockgate"] = bench_lockgate(args.repeats, work, suite_dir)
    if "lockgate_pipeline_s3" in only:
        out["lockgate_pipeline_s3"] = bench_lockgate_s3(args.repeats, work, suite_dir)
        out["s3_lake"] = s3_lake.server_description()
    if "incremental" in only:
        out["incremental"] = bench_incremental(work, suite_dir, args.changed_rows)
    if "small_tables" in only:
        out["small_tables"] = bench_small_tables(work, args.small_tables)
    if "memory" in only:
        out["memory"] = bench_memory(work, suite_dir, table_bytes, args.driver_memory)
    pg = bench_pg_warehouse(only & set(PG_MEASURES), args.repeats, work, suite_dir)
    user = run_user_measures(only & set(USER_MEASURES), args, work)
    files = files_landing.run_measures(only & set(FILES_MEASURES), args.repeats, work)
    out.update({**pg.as_json(), **user.as_json(), **files.as_json()})
    ratios = {**pg.targets(), **user.targets(), **files.targets()}
    if "lockgate" in out and "lockgate_pipeline_s3" in out:
        ratios[LAKE_RATIO] = lake_ratio(out["lockgate"]["pipeline"], out["lockgate_pipeline_s3"]["pipeline"])
    if ratios:
        out["ratios"] = {name: target.as_json() for name, target in ratios.items()}
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def full_run(args, work: Path, suite_dir: Path) -> dict:
    """Every measure, one after the other, in one run."""
    load_before = os.getloadavg()
    table_bytes = ensure_table(args.rows)
    samples: dict[str, list[float]] = {}
    log("psql binary COPY");           samples["copy_binary"] = bench_copy_binary(args.repeats)  # noqa: E702
    log("ConnectorX");                 samples["connectorx"] = bench_connectorx(args.repeats, work)  # noqa: E702
    log("dlt sql_table (pyarrow)");    samples["dlt_pyarrow"] = bench_dlt(args.repeats, work)  # noqa: E702
    log("Lockgate pipeline");          lockgate = bench_lockgate(args.repeats, work, suite_dir)  # noqa: E702
    log("Lockgate pipeline, S3 lake"); lockgate_s3 = bench_lockgate_s3(args.repeats, work, suite_dir)  # noqa: E702
    for stage in STAGES:  # each S3 figure beside its local one
        samples[f"lockgate_{stage}"] = lockgate[stage]
        samples[f"lockgate_{stage}_s3"] = lockgate_s3[stage]
    pg = bench_pg_warehouse(set(PG_MEASURES), args.repeats, work, suite_dir)
    samples.update(pg.samples)
    med = {k: median(v) for k, v in samples.items()}
    log("incremental interval");       incremental = bench_incremental(work, suite_dir, args.changed_rows)  # noqa: E702
    incremental["full_load_seconds"] = med["lockgate_pipeline"]
    log("small tables");               small = bench_small_tables(work, args.small_tables)  # noqa: E702
    log("memory");                     memory = bench_memory(work, suite_dir, table_bytes, args.driver_memory)  # noqa: E702
    user = run_user_measures(set(USER_MEASURES), args, work)
    files = files_landing.run_measures(set(FILES_MEASURES), args.repeats, work)
    vs_reference = f"{WARM} / {REFERENCE}"
    ratios = {
        "lockgate_extract/connectorx": Target(med["lockgate_extract"] / med["connectorx"], 1.0, vs_reference),
        "lockgate_extract/dlt_pyarrow": Target(med["lockgate_extract"] / med["dlt_pyarrow"], 0.4, vs_reference),
        "lockgate_extract/copy_binary": Target(med["lockgate_extract"] / med["copy_binary"], 2.0, vs_reference),
        "lockgate_pipeline/copy_binary": Target(med["lockgate_pipeline"] / med["copy_binary"], 3.0, vs_reference),
        "lockgate_validate/lockgate_extract": Target(med["lockgate_validate"] / med["lockgate_extract"], 0.35, WARM),
        LAKE_RATIO: lake_ratio(lockgate["pipeline"], lockgate_s3["pipeline"]),
        "incremental/full_load": Target(incremental["seconds"] / incremental["full_load_seconds"], 0.10, WARM),
        **pg.targets(),
        **user.targets(),
        **files.targets(),
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "table_bytes": table_bytes,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in load_before],
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "kinds": KINDS,
        "s3_lake": s3_lake.server_description(),
        "median_s": med,
        "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "ratios": {name: target.as_json() for name, target in ratios.items()},
        "small_tables": small,
        "incremental": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in incremental.items()},
        "memory": memory,
        **pg.as_json(),
        **user.as_json(),
        **files.as_json(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small-tables", type=int, default=50)
    parser.add_argument("--scheduler-tables", type=int, default=20)
    parser.add_argument("--changed-rows", type=int, default=1000)
    parser.add_argument("--driver-memory", default="512m")
    parser.add_argument(
        "--only", default="",
        help=f"comma-separated subset of {','.join(ALL_MEASURES)}: prints those figures (and the "
        f"targets they allow), keeps them in {WORK.name}/only.json and writes no results",
    )  # fmt: skip
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(ALL_MEASURES)
    if unknown:
        parser.error(f"unknown measure(s) in --only: {', '.join(sorted(unknown))}")
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    suite_dir = work / "expectations"
    (suite_dir / "bench").mkdir(parents=True)
    (suite_dir / "bench" / "lineitem.json").write_text(json.dumps(SUITE), encoding="utf-8")
    try:
        if only:
            out = json.dumps(partial_run(only, args, work, suite_dir), indent=2, default=str)
            (WORK / "only.json").write_text(out + "\n", encoding="utf-8")
            print(out)
            return 0
        result = full_run(args, work, suite_dir)
        write_results(result)
        print((RESULTS / "latest.md").read_text(encoding="utf-8"))
        print(json.dumps({k: result.get(k) for k in ("small_tables", "incremental", "memory")}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
