"""DAG integrity: every DAG imports through Airflow's own DagBag, is acyclic, carries
tags, an owner and retries, and a broken source file fails the import with a message
that names the file, the table and the field."""

from __future__ import annotations

import shutil
import sys
import textwrap
from datetime import UTC
from pathlib import Path

import pytest
from lockgate.config import load_sources
from lockgate.dag_factory import TAG_VOCABULARY

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS = PROJECT_ROOT / "dags"


def _dagbag(dag_folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dag_folder), safe_mode=False)


@pytest.fixture(scope="module")
def dagbag():
    return _dagbag(DAGS)


def test_every_dag_imports(dagbag):
    assert dagbag.import_errors == {}
    expected = {f"ingest_{name}" for name in load_sources(DAGS / "sources")}
    assert expected, "no source files in dags/sources"
    assert set(dagbag.dag_ids) == expected


def test_dags_have_tags_owner_and_retries(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        assert set(TAG_VOCABULARY) <= set(dag.tags), dag_id
        assert any(tag.startswith("source:") for tag in dag.tags), dag_id
        assert dag.tasks, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{task.task_id} has no owner"
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"
            assert task.retry_exponential_backoff


def test_dags_are_acyclic_with_the_four_stages_per_table(dagbag):
    for name, config in load_sources(DAGS / "sources").items():
        dag = dagbag.dags[f"ingest_{name}"]
        dag.check_cycle()  # raises AirflowDagCycleException on a cycle
        order = [t.task_id for t in dag.topological_sort()]
        assert len(order) == len(set(order)) == 4 * len(config.tables)
        for table in config.tables:
            stages = [f"{table.name}.{s}" for s in ("extract", "validate", "load", "publish")]
            positions = [order.index(s) for s in stages]
            assert positions == sorted(positions), f"{table.name} stages out of order: {stages}"
            for upstream, downstream in zip(stages, stages[1:], strict=False):
                assert downstream in dag.get_task(upstream).downstream_task_ids


def test_schedule_is_an_interval_timetable(dagbag):
    dag = dagbag.dags["ingest_shop"]
    from datetime import datetime

    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval

    timetable = coerce_to_core_timetable(dag.timetable)
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=_restriction(dag))
    assert isinstance(info.data_interval, DataInterval)
    start, end = info.data_interval.start, info.data_interval.end
    assert start == datetime(2026, 1, 1, tzinfo=UTC)
    assert (end - start).days == 1, "a daily run must cover a whole day, not an instant"


def _restriction(dag):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)


def test_publish_emits_an_asset_per_table(dagbag):
    dag = dagbag.dags["ingest_shop"]
    uris = {outlet.uri for task in dag.tasks for outlet in task.outlets}
    tables = ("customers", "products", "orders", "order_items", "payments", "clicks")  # clicks: the landing zone's files
    assert uris == {f"lockgate://warehouse/shop/{t}" for t in tables}


def test_dag_module_has_no_heavy_imports_at_parse_time(tmp_path):
    """Parsing the DAG file must not import Spark, GX or DuckDB (the scheduler parses
    it every few seconds)."""
    import subprocess

    code = textwrap.dedent(
        f"""
        import runpy, sys
        runpy.run_path({str(DAGS / 'lockgate_dags.py')!r})
        heavy = sorted(m for m in ("pyspark", "great_expectations", "duckdb", "pandas") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"heavy modules imported: {out.stdout}"


BROKEN = """\
source: broken
connection: broken_db
start_date: 2026-01-01
tables:
  - name: customers
    primary_key: [customer_id]
    mode: merge
    cursor: updated_at
  - name: orders
    primary_key: [order_id]
    mode: upsert
    cursor: updated_at
"""


def test_broken_yaml_fails_import_naming_file_table_and_field(tmp_path, monkeypatch):
    dags = tmp_path / "dags"
    (dags / "sources").mkdir(parents=True)
    shutil.copy(DAGS / "lockgate_dags.py", dags)
    shutil.copy(DAGS / ".airflowignore", dags)
    shutil.copy(DAGS / "sources" / "shop.yml", dags / "sources")
    broken = dags / "sources" / "broken.yml"
    broken.write_text(BROKEN)
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(dags / "sources"))
    bag = _dagbag(dags)
    assert list(bag.import_errors) == [str(dags / "lockgate_dags.py")]
    message = next(iter(bag.import_errors.values()))
    assert str(broken) in message
    assert "table 'orders'" in message
    assert "field 'mode'" in message
    assert "'upsert'" in message


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda t: t.replace("mode: upsert", "mode: merge\n    partitions: 0"), ["table 'orders'", "field 'partitions'"]),
        (lambda t: t.replace("mode: upsert", "mode: merge\n    lookback: soon"), ["table 'orders'", "field 'lookback'"]),
        (lambda t: t.replace("    cursor: updated_at\n", "", 1).replace("upsert", "merge"), ["table 'customers'", "'cursor'"]),
        (lambda t: t.replace("mode: upsert", "mode: merge\n    colour: blue"), ["table 'orders'", "field 'colour'", "not a known setting"]),
        # `connection` may be left out when every table reads files from a landing zone.
        (lambda t: t.replace("connection: broken_db\n", "").replace("upsert", "merge"), ["table 'customers'", "needs a 'connection'"]),
        (lambda t: t.replace("source: broken", "source: other").replace("upsert", "merge"), ["field 'source'", "broken.yml"]),
        (lambda t: t.replace("  - name: customers", "  - name: orders").replace("upsert", "merge"), ["declared twice"]),
        (lambda t: t + "  - [not, a, mapping\n", ["not valid YAML"]),
    ],
)
def test_every_config_error_names_the_file_and_the_place(tmp_path, mutation, expected):
    from lockgate.config import load_source_file
    from lockgate.errors import ConfigError

    path = tmp_path / "broken.yml"
    path.write_text(mutation(BROKEN))
    with pytest.raises(ConfigError) as info:
        load_source_file(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_trigger_form_offers_the_reprocessing_params(dagbag):
    for dag in dagbag.dags.values():
        params = dag.params
        assert params["full_refresh"] is False
        assert params["tables"] is None
        assert params["replay_from_lake"] is None
        tables = {group.split(".")[0] for group in dag.task_group_dict}
        schema = dag.params.get_param("tables").schema
        assert set(schema["items"]["enum"]) == tables, dag.dag_id
        # The UI's multi-select lists its options from `examples`.
        assert set(schema["examples"]) == tables, dag.dag_id
        for name, param in dag.params.items():
            assert param.description and param.schema.get("title"), f"{dag.dag_id}: {name} unexplained"


def _field_required_in_ui(schema: dict) -> bool:
    """The Airflow 3 UI's rule: a field is required when its type excludes null."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def test_trigger_form_defaults_let_the_trigger_button_work(dagbag):
    """An untouched form (or one whose selection was cleared) is valid: every field whose
    default is empty accepts null, which the UI sends for an empty selection."""
    for dag in dagbag.dags.values():
        for name, param in dag.params.items():
            if param.value in (None, "", []) or param.schema.get("type") == "array":
                assert not _field_required_in_ui(param.schema), f"{dag.dag_id}: '{name}' would block Trigger"
        dag.params.validate()  # the defaults themselves


def test_trigger_form_accepts_choices_and_rejects_unknown_tables(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags["ingest_shop"]

    def with_conf(conf: dict) -> dict:
        params = ParamsDict(dag.params)
        params.update(conf)
        return params.validate()

    assert with_conf({"tables": None, "replay_from_lake": None}) == {
        "full_refresh": False, "tables": None, "replay_from_lake": None,
    }  # fmt: skip
    assert with_conf({"tables": ["orders"], "full_refresh": True})["tables"] == ["orders"]
    with pytest.raises(Exception, match="nope"):
        with_conf({"tables": ["nope"]})


@pytest.mark.parametrize("catchup", [True, False])
def test_catchup_is_a_per_source_setting(tmp_path, monkeypatch, catchup):
    from lockgate.config import load_source_file
    from lockgate.dag_factory import build_dag

    text = (PROJECT_ROOT / "dags" / "sources" / "shop.yml").read_text(encoding="utf-8")
    path = tmp_path / "shop.yml"
    path.write_text(text + f"catchup: {str(catchup).lower()}\n", encoding="utf-8")
    assert build_dag(load_source_file(path)).catchup is catchup


def test_shop_dag_keeps_catchup_off_by_default(dagbag):
    assert dagbag.dags["ingest_shop"].catchup is False


def test_no_module_shadows_the_standard_library():
    """Airflow's task processes may have a plugin package's own folder on ``sys.path``: a
    module ``plugins/lockgate/profile.py`` broke every extract (``import cProfile`` found it
    instead of the standard ``profile``)."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    modules = {p.stem for folder in ("plugins", "dags", "spark_jobs") for p in (root / folder).rglob("*.py")}
    modules |= {p.name for folder in ("plugins", "dags", "spark_jobs") for p in (root / folder).rglob("*") if p.is_dir()}
    assert "lockgate" in modules and "cross_run" in modules
    assert sorted(modules & set(sys.stdlib_module_names)) == []
