"""Errors that cannot heal are not retried: a configuration error, a type without a
warehouse mapping and destructive schema drift fail the Airflow task at once
(``AirflowFailException``) with a message naming table, column and type; a source that
is unreachable is still retried. The DAG's own task functions run here, against a
real PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from lockgate.config import load_source_file
from lockgate.dag_factory import build_dag
from lockgate.errors import SourceError

from tests.cursors.typecase import D1, D2

pytestmark = pytest.mark.integration


@dataclass
class DagRunRecord:
    """The attributes of Airflow's DagRun that the task functions read."""

    run_id: str = "scheduled__2026-03-01"
    clear_number: int = 0
    run_after: object = None


def _write_source(folder: Path, connection: str, **table: object) -> Path:
    lines = ["source: ff", f"connection: {connection}", "start_date: 2026-03-01", "retries: 3", "tables:",
             "  - name: t", "    primary_key: [id]", "    mode: full"]  # fmt: skip
    lines += [f"    {key}: {value}" for key, value in table.items()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ff.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run_task(path: Path, task: str, run_id: str = "scheduled__2026-03-01", **kwargs):
    dag = build_dag(load_source_file(path))
    context = {"params": {"tables": None}, "dag_run": DagRunRecord(run_id), "data_interval_start": D1,
               "data_interval_end": D2}  # fmt: skip
    return dag.get_task(f"t.{task}").python_callable(**kwargs, **context)


def test_a_value_without_an_exact_warehouse_type_fails_the_task_at_once(
    pg_conn, pg_database, lake_env, spark, tmp_path, monkeypatch
):
    pg_conn.execute("CREATE TABLE t (id integer PRIMARY KEY, n numeric)")
    pg_conn.execute("INSERT INTO t VALUES (1, 0.1234567890123456789012)")
    monkeypatch.setenv("AIRFLOW_CONN_FF_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(tmp_path / "sources"))
    path = _write_source(tmp_path / "sources", "ff_pg")
    with pytest.raises(AirflowFailException, match=r"table 't'.*column 'n' \(numeric\).*not retried"):
        _run_task(path, "extract")


def test_a_config_error_at_run_time_fails_the_task_at_once(lake_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(tmp_path / "sources"))
    path = _write_source(tmp_path / "sources", "ff_pg")
    dag = build_dag(load_source_file(path))
    path.write_text(path.read_text(encoding="utf-8").replace("mode: full", "mode: upsert"), encoding="utf-8")
    context = {"params": {"tables": None}, "dag_run": DagRunRecord()}
    with pytest.raises(AirflowFailException, match="table 't', field 'mode'"):
        dag.get_task("t.extract").python_callable(**context)


def test_an_unknown_column_in_the_selection_fails_the_task_at_once(
    pg_conn, pg_database, lake_env, spark, tmp_path, monkeypatch
):
    pg_conn.execute("CREATE TABLE t (id integer PRIMARY KEY, email text)")
    monkeypatch.setenv("AIRFLOW_CONN_FF_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(tmp_path / "sources"))
    path = _write_source(tmp_path / "sources", "ff_pg", exclude_columns="[e_mail]")
    with pytest.raises(AirflowFailException, match="column 'e_mail' named in columns/exclude_columns"):
        _run_task(path, "extract")


def test_schema_drift_fails_the_load_task_at_once(pg_conn, pg_database, lake_env, spark, tmp_path, monkeypatch):
    pg_conn.execute("CREATE TABLE t (id integer PRIMARY KEY, status text)")
    pg_conn.execute("INSERT INTO t VALUES (1, 'a')")
    monkeypatch.setenv("AIRFLOW_CONN_FF_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(tmp_path / "sources"))
    path = _write_source(tmp_path / "sources", "ff_pg")
    extracted = _run_task(path, "extract")
    _run_task(path, "load", extracted=extracted, validated={})
    pg_conn.execute("ALTER TABLE t ALTER COLUMN status TYPE integer USING 1")
    again = _run_task(path, "extract", run_id="second")
    with pytest.raises(AirflowFailException, match="column 'status' changed type from VARCHAR to INTEGER"):
        _run_task(path, "validate", run_id="second", extracted=again)


def test_an_unreachable_source_is_still_retried(pg_database, lake_env, spark, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_FF_DOWN", f"postgres://postgres@127.0.0.1:1/{pg_database}")
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(tmp_path / "sources"))
    path = _write_source(tmp_path / "sources", "ff_down")
    with pytest.raises(SourceError, match="not reachable"):
        _run_task(path, "extract")
