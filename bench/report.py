"""The results files: ``latest.json`` (everything), ``latest.md`` (the tables a person
reads, each figure marked warm-session, as users run it, or reference) and ``latest.png``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from benchlib import AS_USERS_RUN, REFERENCE, RESULTS, WARM, log

#: How each measure is taken (also written to the JSON as ``kinds``).
KINDS = {
    "copy_binary": REFERENCE, "connectorx": REFERENCE, "dlt_pyarrow": REFERENCE,
    "lockgate_extract": WARM, "lockgate_validate": WARM, "lockgate_load": WARM, "lockgate_pipeline": WARM,
    "lockgate_extract_s3": WARM, "lockgate_validate_s3": WARM, "lockgate_load_s3": WARM, "lockgate_pipeline_s3": WARM,
    "small_tables": WARM, "incremental": WARM, "memory": WARM,
    "connectorx_lineitem": REFERENCE, "duckdb_scanner": REFERENCE,
    "dag_full_load": AS_USERS_RUN, "dag_full_load_in_process": AS_USERS_RUN, "scheduler_small_tables": AS_USERS_RUN,
    "files_lockgate": WARM, "files_duckdb_reference": REFERENCE, "files_split_16": WARM, "files_one_big_gzip": WARM,
    "lockgate_load_pg": WARM, "lockgate_load_pg_1": WARM, "pg_copy_single": REFERENCE,
}  # fmt: skip
#: What the lake in S3 (a local moto server) costs the full load of the bench table.
LAKE_RATIO = "lockgate_pipeline_s3/lockgate_pipeline"


@dataclass
class Target:
    """A figure of one run against its target (``value <= target`` meets it; no target:
    a ratio reported for what it is, ``met`` is null)."""

    value: float
    target: float | None
    kind: str  # how the figure's parts were measured

    def as_json(self) -> dict[str, Any]:
        met = None if self.target is None else self.value <= self.target
        return {"value": round(self.value, 3), "target": self.target, "met": met, "kind": self.kind}


def write_results(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (RESULTS / "latest.md").write_text("\n".join(markdown(result)) + "\n", encoding="utf-8")
    chart(result)


def markdown(result: dict) -> list[str]:
    m, r = result["median_s"], result["ratios"]
    return [
        f"Benchmark {result['date']} — {result['rows']:,} rows, {result['table_bytes'] / 2**20:,.0f} MiB in PostgreSQL, "
        f"{result['machine']['cpus']} cores, medians of {result['repeats']} runs",
        "",
        f"How measured: *{WARM}* = Lockgate's stages called in one long-lived interpreter with a warm Spark session; "
        f"*{AS_USERS_RUN}* = fresh Airflow processes as a user's deployment runs the DAG; "
        f"*{REFERENCE}* = another tool doing the same work, each run in a fresh process.",
        "",
        "| measure | median s | how measured |",
        "|---|---:|---|",
        *[f"| {k} | {v:.2f} | {KINDS.get(k, '')} |" for k, v in m.items()],
        "",
        *user_run_lines(result),
        "| ratio | value | target | met | how measured |",
        "|---|---:|---:|:---:|---|",
        *[f"| {k} | {v['value']:.2f} | {_target(v)} | {_met(v)} | {v.get('kind', '')} |" for k, v in r.items()],
        "",
        *s3_lake_lines(result),
        *pg_lines(result),
        f"small tables ({WARM}): {result['small_tables']['tables']} tables, "
        f"{result['small_tables']['overhead_s_per_table']:.2f} s per table (target ≤ 1.5); "
        f"incremental ({WARM}): {result['incremental']['changed_rows']:,} changed rows in "
        f"{result['incremental']['seconds']:.2f} s; memory ({WARM}): {result['memory']['rows']:,} rows with driver "
        f"memory {result['memory']['driver_memory']}, peak RSS {result['memory']['peak_rss_mb']:.0f} MB",
        *files_lines(result),
        *breakdown_lines(result),
    ]  # fmt: skip


def _target(ratio: dict) -> str:
    return "—" if ratio["target"] is None else f"≤ {ratio['target']}"


def _met(ratio: dict) -> str:
    return {True: "yes", False: "no"}.get(ratio["met"], "—")


def s3_lake_lines(result: dict) -> list[str]:
    """The full load with the lake in S3 beside the local one, stage by stage."""
    m, ratio = result["median_s"], result["ratios"].get(LAKE_RATIO)
    if ratio is None or "lockgate_pipeline_s3" not in m:
        return []
    extra = ", ".join(f"{stage} {m[f'lockgate_{stage}_s3'] - m[f'lockgate_{stage}']:+.2f}"
                      for stage in ("extract", "validate", "load"))  # fmt: skip
    return [
        f"Lake in S3 ({WARM}; {result.get('s3_lake', 'a local S3 server')}): lockgate_pipeline_s3 "
        f"{m['lockgate_pipeline_s3']:.2f} s = {ratio['value']:.2f} × lockgate_pipeline {m['lockgate_pipeline']:.2f} s; "
        f"s per stage against the local lake: {extra} (extract: upload at seal; validate: download for Spark, "
        "reports and Data Docs written to S3; load: DuckDB reads over httpfs)",
        "",
    ]


def pg_lines(result: dict) -> list[str]:
    """The loads into a PostgreSQL warehouse: the split used and where the time went."""
    pg = result.get("pg_warehouse")
    if not pg:
        return []
    lines = [f"PostgreSQL warehouse: the bench table's sealed batch ({pg['rows']:,} rows) into a fresh database "
             "each repeat (seconds; the load's parts are medians):", "",
             "| measure | split N (parts) | median s | samples | where the time went | how measured |",
             "|---|---:|---:|---|---|---|"]  # fmt: skip
    for name in ("lockgate_load_pg", "lockgate_load_pg_1", "pg_copy_single"):
        m = pg.get(name)
        if m:
            split = f"{m['split_n']} ({', '.join(map(str, m['parts']))})" if "split_n" in m else "1 file"
            parts = sorted(m.get("spent_s", {}).items(), key=lambda kv: -kv[1])
            spent = ", ".join(f"{k} {v:.2f}" for k, v in parts if v >= 0.005) or m.get("timed", "")
            lines.append(f"| {name} | {split} | {m['seconds']:.2f} | {_samples(m)} | {spent} | {m['kind']} |")
    return [*lines, ""]


def user_run_lines(result: dict) -> list[str]:
    """The TPC-H lineitem table and the scheduler run, when measured."""
    full, scanner = result.get("dag_full_load"), result.get("duckdb_scanner")
    sched, cx = result.get("scheduler_small_tables"), result.get("connectorx_lineitem")
    if not (full and scanner and sched and cx):
        return []
    run = full["median_run"]
    stages = run["stages"]
    lever = result.get("dag_full_load_in_process")
    first = full.get("first_run_seconds")
    return [
        f"TPC-H lineitem SF1: {run['rows']:,} rows, {full['table_bytes'] / 2**20:,.0f} MiB in PostgreSQL",
        "",
        "| measure | s | how measured |",
        "|---|---:|---|",
        f"| dag_full_load (`airflow dags test`, whole process, {full['spark']}; median of {_samples(full)}) "
        f"| {full['seconds']:.2f} | {AS_USERS_RUN} |",
        f"| … its extract / validate / load stages (lockgate.runs) | {stages['extract']:.2f} / "
        f"{stages['validate']:.2f} / {stages['load']:.2f} | {AS_USERS_RUN} |",
        *([f"| … the first run after the server started (its Python workers and JIT cold) | {first:.2f} "
           f"| {AS_USERS_RUN} |"] if first else []),
        *([f"| dag_full_load without the server ({lever['spark']}; median of {_samples(lever)}) "
           f"| {lever['seconds']:.2f} | {AS_USERS_RUN} |"] if lever else []),
        f"| duckdb_scanner (postgres scanner → DuckDB table, whole process) | {scanner['seconds']:.2f} | {REFERENCE} |",
        f"| connectorx_lineitem (→ Arrow → Parquet) | {cx['seconds']:.2f} | {REFERENCE} |",
        f"| scheduler_small_tables ({sched['tables']} tables × {sched['rows_per_table']} rows, trigger → success) "
        f"| {sched['seconds']:.2f} ({sched['seconds_per_table']:.2f} per table) | {AS_USERS_RUN} |",
        "",
    ]  # fmt: skip


def files_lines(result: dict) -> list[str]:
    """The files landing zone: seconds and uncompressed MB/s of each measure."""
    files = result.get("files")
    if not files:
        return []
    data = next(iter(files["data_sets"].values()))
    measures = {k: v for k, v in files.items() if k in KINDS}
    return [
        "",
        f"Files landing zone: {data['rows']:,} rows of a click stream, {data['uncompressed_bytes'] / 1e9:.2f} GB of "
        f"TSV, {data['gzip_bytes'] / 1e6:,.0f} MB as gzip level {files['gzip_level']} (16 files, or one for "
        "files_one_big_gzip); MB/s of uncompressed TSV:",
        "",
        "| measure | files | median s | MB/s | peak RSS MB | how measured |",
        "|---|---:|---:|---:|---:|---|",
        *[f"| {k} | {m['files']} | {m['seconds']:.2f} | {m['mb_per_s']:.0f} | {m['peak_rss_mb']:.0f} | {m['kind']} |"
          for k, m in measures.items()],
    ]  # fmt: skip


def _samples(measure: dict) -> str:
    return ", ".join(f"{x:.1f}" for x in measure["samples_s"])


def breakdown_lines(result: dict) -> list[str]:
    """Where the time of the two user runs went (from their logs' timestamps)."""
    full, sched = result.get("dag_full_load"), result.get("scheduler_small_tables")
    if not (full and sched):
        return []

    def parts(segments: list[dict]) -> str:
        return "; ".join(f"{s['label']} {s['seconds']:.1f}" for s in segments)

    run = full["median_run"]
    lines = ["", "Where dag_full_load's time went (s, from the median run's `dags test` log):", "",
             f"- process: {parts(run['process'])}"]
    lines += [f"- {task['task_id']} {task['seconds']:.1f}: {parts(task['segments'])}" for task in run["tasks"]]
    lines += ["", f"Where scheduler_small_tables' time went (s; medians per task of each stage, from the metadata and "
              f"the task logs; up to {sched['max_concurrent_tasks']} tasks ran at once; trigger → first task start "
              f"{sched['trigger_to_first_task_start']}):", ""]
    for stage, timing in sched["stages"].items():
        lines.append(f"- {stage}: queued → start {timing['queued_to_start']}, start → end {timing['start_to_end']} "
                     f"(all {timing['tasks']} tasks: {timing['start_to_end_total']:.0f}); {parts(timing['log_segments'])}")
    return lines  # fmt: skip


def chart(result: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing: no chart")
        return
    panels = [(f"{result['rows']:,} rows from PostgreSQL to Parquet ({WARM} Lockgate)", result["median_s"])]
    if result.get("dag_full_load") and result.get("duckdb_scanner") and result.get("connectorx_lineitem"):
        panels.append((f"TPC-H lineitem SF1 ({AS_USERS_RUN} Lockgate)", {
            "connectorx_lineitem": result["connectorx_lineitem"]["seconds"],
            "duckdb_scanner": result["duckdb_scanner"]["seconds"],
            "lockgate extract stage": result["dag_full_load"]["median_run"]["stages"]["extract"] or 0.0,
            "lockgate dag_full_load": result["dag_full_load"]["seconds"],
        }))  # fmt: skip
    if result.get("files"):
        files = {k: v["seconds"] for k, v in result["files"].items() if k in KINDS}
        panels.append(("Files landing zone: gzip TSV to Parquet", files))
    fig, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 4), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        names = list(values)
        ax.barh(names, [values[n] for n in names], color=["#2a6" if "lockgate" in n else "#888" for n in names])
        ax.set_xlabel("seconds (lower is better)")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(RESULTS / "latest.png", dpi=110)
