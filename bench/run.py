"""``make bench``: Lockgate side by side with what a user would otherwise pick.

One run measures, on the machine's PostgreSQL and the same table, with repeats and
medians: Lockgate's extract (Spark, warm session), its validation and its whole
pipeline (extract + validate + load into DuckDB), ``psql`` binary COPY (the limit
reference), ConnectorX and dlt ``sql_table`` (pyarrow backend) — each writing the
table to Parquet except COPY, which streams to /dev/null. Then the fixed overhead of
a source with many tiny tables, the cost of an interval with few changed rows, and
the memory of extracting a table larger than the Spark driver's memory.

Results: ``bench/results/latest.json`` (+ ``latest.md`` and ``latest.png``).
Figures on a shared machine are noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "scratch"
DB = os.environ.get("LOCKGATE_BENCH_DB", "lockgate_bench")
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("LOCKGATE_BENCH_USER", "postgres")}
TABLE = "bench_lineitem"
DAY = datetime(2026, 1, 1, tzinfo=UTC)

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


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def pg_connect(dbname: str):
    import psycopg

    return psycopg.connect(**PG, dbname=dbname, autocommit=True)


def ensure_table(rows: int) -> int:
    with pg_connect("postgres") as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{DB}"')
    with pg_connect(DB) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0]
        current = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] if exists else -1
        if current != rows:
            log(f"creating {TABLE} with {rows:,} rows in database {DB}")
            conn.execute(CREATE.replace("%(rows)s", str(int(rows))))
        size = conn.execute("SELECT pg_table_size(%s)", (TABLE,)).fetchone()[0]
    return int(size)


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
        )
        proc = subprocess.run(
            [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
            env={**os.environ, **(env or {}), "BENCH_RESULT": result.name},
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark job failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.load(result)


def bench_copy_binary(repeats: int) -> list[float]:
    command = ["psql", "-h", PG["host"], "-U", PG["user"], "-d", DB, "-q", "-c",
               f"\\copy (SELECT * FROM {TABLE}) TO '/dev/null' WITH (FORMAT binary)"]  # fmt: skip
    return [timed(command) for _ in range(repeats)]


def bench_connectorx(repeats: int, out: Path) -> list[float]:
    code = f"""
        import json, time
        import connectorx as cx, pyarrow.parquet as pq
        started = time.perf_counter()
        table = cx.read_sql("postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}", "SELECT * FROM {TABLE}",
                            return_type="arrow", partition_on="l_id", partition_num={os.cpu_count() or 2})
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
    import json, os, time, shutil, resource
    from datetime import datetime, UTC
    from lockgate import pipeline
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
        shutil.rmtree(settings.lake_root, ignore_errors=True)
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
    with open(f"/proc/{jvm_pid}/status") as status:
        jvm_hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    emit({"runs": results, "self_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          "jvm_hwm_kb": jvm_hwm})
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


def bench_lockgate(repeats: int, work: Path, suite_dir: Path) -> dict[str, list[float]]:
    env = lockgate_env(work, suite_dir, BENCH_CONFIG=bench_config(), BENCH_REPEATS=str(repeats), BENCH_FULL="1")
    runs = python_job(LOCKGATE_JOB, env)["runs"]
    return {k: [r[k] for r in runs] for k in ("extract", "validate", "load", "pipeline")}


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


def bench_memory(work: Path, suite_dir: Path, table_bytes: int, driver_memory: str) -> dict:
    env = lockgate_env(work / "memory", suite_dir, BENCH_CONFIG=bench_config(), BENCH_REPEATS="1", BENCH_FULL="1",
                       BENCH_STAGES="extract", LOCKGATE_SPARK_DRIVER_MEMORY=driver_memory)  # fmt: skip
    job = python_job(LOCKGATE_JOB, env)
    runs = job["runs"]
    # The driver is the Spark JVM plus the Python process that drives it.
    peak_kb = job["jvm_hwm_kb"] + job["self_rss_kb"]
    return {"driver_memory": driver_memory, "table_bytes": table_bytes, "rows": runs[0]["rows"],
            "peak_rss_mb": round(peak_kb / 1024, 1), "jvm_peak_rss_mb": round(job["jvm_hwm_kb"] / 1024, 1),
            "seconds": round(runs[0]["extract"], 2)}  # fmt: skip


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def write_results(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    m, r = result["median_s"], result["ratios"]
    lines = [
        f"Benchmark {result['date']} — {result['rows']:,} rows, {result['table_bytes'] / 2**20:,.0f} MiB in PostgreSQL, "
        f"{result['machine']['cpus']} cores, medians of {result['repeats']} runs",
        "",
        "| measure | median s |",
        "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in m.items()],
        "",
        "| ratio | value | target | met |",
        "|---|---:|---:|:---:|",
        *[f"| {k} | {v['value']:.2f} | ≤ {v['target']} | {'yes' if v['met'] else 'no'} |" for k, v in r.items()],
        "",
        f"small tables: {result['small_tables']['tables']} tables, "
        f"{result['small_tables']['overhead_s_per_table']:.2f} s per table (target ≤ 1.5); "
        f"incremental: {result['incremental']['changed_rows']:,} changed rows in {result['incremental']['seconds']:.2f} s; "
        f"memory: {result['memory']['rows']:,} rows with driver memory {result['memory']['driver_memory']}, "
        f"peak RSS {result['memory']['peak_rss_mb']:.0f} MB",
    ]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(m)
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.barh(names, [m[n] for n in names], color=["#2a6" if n.startswith("lockgate") else "#888" for n in names])
        ax.set_xlabel("seconds (median, lower is better)")
        ax.set_title(f"{result['rows']:,} rows from PostgreSQL to Parquet")
        fig.tight_layout()
        fig.savefig(RESULTS / "latest.png", dpi=110)
    except ImportError:
        log("matplotlib is missing: no chart")


def partial_run(only: set[str], args, work: Path, suite_dir: Path, table_bytes: int) -> dict:
    """Some of the measures, for a quick look while tuning."""
    out: dict = {}
    if "copy_binary" in only:
        out["copy_binary"] = bench_copy_binary(args.repeats)
    if "connectorx" in only:
        out["connectorx"] = bench_connectorx(args.repeats, work)
    if "dlt_pyarrow" in only:
        out["dlt_pyarrow"] = bench_dlt(args.repeats, work)
    if "lockgate" in only:
        out["lockgate"] = bench_lockgate(args.repeats, work, suite_dir)
    if "incremental" in only:
        out["incremental"] = bench_incremental(work, suite_dir, args.changed_rows)
    if "small_tables" in only:
        out["small_tables"] = bench_small_tables(work, args.small_tables)
    if "memory" in only:
        out["memory"] = bench_memory(work, suite_dir, table_bytes, args.driver_memory)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small-tables", type=int, default=50)
    parser.add_argument("--changed-rows", type=int, default=1000)
    parser.add_argument("--driver-memory", default="512m")
    parser.add_argument(
        "--only", default="",
        help="comma-separated subset of copy_binary,connectorx,dlt_pyarrow,lockgate,incremental,small_tables,memory: "
        "prints those figures and writes no results",
    )  # fmt: skip
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    suite_dir = work / "expectations"
    (suite_dir / "bench").mkdir(parents=True)
    (suite_dir / "bench" / "lineitem.json").write_text(json.dumps(SUITE), encoding="utf-8")
    try:
        table_bytes = ensure_table(args.rows)
        if only:
            print(json.dumps(partial_run(only, args, work, suite_dir, table_bytes), indent=2))
            return 0
        samples: dict[str, list[float]] = {}
        log("psql binary COPY");           samples["copy_binary"] = bench_copy_binary(args.repeats)  # noqa: E702
        log("ConnectorX");                 samples["connectorx"] = bench_connectorx(args.repeats, work)  # noqa: E702
        log("dlt sql_table (pyarrow)");    samples["dlt_pyarrow"] = bench_dlt(args.repeats, work)  # noqa: E702
        log("Lockgate pipeline");          lockgate = bench_lockgate(args.repeats, work, suite_dir)  # noqa: E702
        samples["lockgate_extract"] = lockgate["extract"]
        samples["lockgate_validate"] = lockgate["validate"]
        samples["lockgate_load"] = lockgate["load"]
        samples["lockgate_pipeline"] = lockgate["pipeline"]
        med = {k: median(v) for k, v in samples.items()}
        log("incremental interval");       incremental = bench_incremental(work, suite_dir, args.changed_rows)  # noqa: E702
        incremental["full_load_seconds"] = med["lockgate_pipeline"]
        log("small tables");               small = bench_small_tables(work, args.small_tables)  # noqa: E702
        log("memory");                     memory = bench_memory(work, suite_dir, table_bytes, args.driver_memory)  # noqa: E702
        ratios = {
            "lockgate_extract/connectorx": (med["lockgate_extract"] / med["connectorx"], 1.0),
            "lockgate_extract/dlt_pyarrow": (med["lockgate_extract"] / med["dlt_pyarrow"], 0.4),
            "lockgate_extract/copy_binary": (med["lockgate_extract"] / med["copy_binary"], 2.0),
            "lockgate_pipeline/copy_binary": (med["lockgate_pipeline"] / med["copy_binary"], 3.0),
            "lockgate_validate/lockgate_extract": (med["lockgate_validate"] / med["lockgate_extract"], 0.35),
            "incremental/full_load": (incremental["seconds"] / incremental["full_load_seconds"], 0.10),
        }
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": args.rows,
            "table_bytes": table_bytes,
            "repeats": args.repeats,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "median_s": med,
            "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
            "ratios": {k: {"value": round(v, 3), "target": t, "met": v <= t} for k, (v, t) in ratios.items()},
            "small_tables": small,
            "incremental": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in incremental.items()},
            "memory": memory,
        }
        write_results(result)
        print((RESULTS / "latest.md").read_text(encoding="utf-8"))
        print(json.dumps({"small_tables": small, "incremental": result["incremental"], "memory": memory}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
