"""OpenLineage events of a table run (lockgate.lineage), from the real four stages run
against a real PostgreSQL source, with nothing configured: the default file transport
writes them to ``<lake>/lineage/<date>.jsonl``.

- a run that finishes emits START (extract) and COMPLETE (publish) with the same run
  id, the source table as input, the raw version and the warehouse table as outputs,
  the batch's schema, row counts and the validation report's rules;
- a stage that raises emits FAIL for that run, with the error;
- ``[openlineage] transport`` sends the events elsewhere, ``disabled`` sends none.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import airflow.sdk  # noqa: F401 - Airflow configures logging on import: before caplog, not during the test
import pytest
from lockgate.faults import InjectedFault

from tests.reprocessing.harness import SOURCE, day

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
JOB = f"ingest_{SOURCE}.events"


def _events(lake_root: Path) -> list[dict]:
    files = sorted((lake_root / "lineage").glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line]


def _of_run(events: list[dict], airflow_run_id: str) -> list[dict]:
    def tags(event: dict) -> dict:
        return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}

    return [e for e in events if e["job"]["name"] == JOB and tags(e)["airflow_run_id"] == airflow_run_id]


def _by_name(datasets: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["namespace"], d["name"]): d for d in datasets}


def test_a_finished_run_has_start_and_complete_with_datasets_counts_and_rules(pg_source, caplog):
    src = pg_source
    src.create("events", chunk_rows=10)
    src.insert_events(1, 24, day(0), HOUR)
    run = src.run_info(0)
    with caplog.at_level(logging.INFO, logger="lockgate"):
        result = src.run("events", run)
    events = _of_run(_events(src.settings.lake_root), run.run_id)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    start, complete = events
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["job"]["namespace"] == "default"
    assert complete["run"]["facets"]["nominalTime"]["nominalStartTime"] == day(0).isoformat()

    source = ("postgres://127.0.0.1:5432", f"{src.database}.public.events")
    raw = ("file", str(Path(result["raw_path"]).resolve()))
    target = (f"duckdb://{Path(src.settings.warehouse).resolve()}", f"{SOURCE}.events")
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [source]
    assert list(_by_name(complete["inputs"])) == [source]
    assert list(_by_name(complete["outputs"])) == [raw, target]

    read = complete["inputs"][0]
    assert read["inputFacets"]["inputStatistics"]["rowCount"] == 24
    assert [f["name"] for f in read["facets"]["schema"]["fields"]] == [
        "event_id", "kind", "payload", "amount", "created_at"
    ]  # fmt: skip
    outputs = _by_name(complete["outputs"])
    raw_stats = outputs[raw]["outputFacets"]["outputStatistics"]
    assert raw_stats["rowCount"] == 24 and raw_stats["size"] > 0 and raw_stats["fileCount"] >= 1
    assert outputs[target]["outputFacets"]["outputStatistics"]["rowCount"] == 24
    assert {f["type"] for f in outputs[target]["facets"]["schema"]["fields"]} >= {"bigint", "string"}

    # The built-in suite (primary key not NULL and unique) and Lockgate's row-count check.
    assertions = read["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {(a["assertion"], a.get("column"), a["success"]) for a in assertions} == {
        ("expect_column_values_to_not_be_null", "event_id", True),
        ("expect_column_values_to_be_unique", "event_id", True),
        ("lockgate_row_count_matches_source", None, True),
    }
    # Never a login in a dataset or anywhere in the file.
    text = "".join(f.read_text() for f in (src.settings.lake_root / "lineage").glob("*.jsonl"))
    assert "postgres@" not in text
    # Progress of the chunked extract in the task log.
    progress = [
        r.getMessage() for r in caplog.records if "chunk" in r.getMessage() and "done" in r.getMessage()
    ]
    assert re.fullmatch(r"extract rp\.events: chunk 3/3 done in \d+\.\d s, 24 / 24 rows \(100%\)", progress[-1]), progress
    assert progress[0].startswith("extract rp.events: chunk 1/3 done in ")


def test_a_stage_that_raises_emits_fail_for_the_run(pg_source, monkeypatch):
    src = pg_source
    src.create("events")
    src.insert_events(1, 10, day(0), HOUR)
    run = src.run_info(0)
    extracted = src.stage("extract", "events", run)
    src.stage("validate", "events", run, extracted["raw_path"])
    monkeypatch.setenv("LOCKGATE_FAILPOINTS", "load.before_commit@events")
    with pytest.raises(InjectedFault):
        src.stage("load", "events", run, extracted["raw_path"])
    events = _of_run(_events(src.settings.lake_root), run.run_id)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    start, fail = events
    assert fail["run"]["runId"] == start["run"]["runId"]
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("load failed: InjectedFault: injected failure at load.before_commit")
    assert [d["name"] for d in fail["inputs"]] == [f"{src.database}.public.events"]
    assert [d["name"] for d in fail["outputs"]] == [
        str(Path(extracted["raw_path"]).resolve()),
        f"{SOURCE}.events",
    ]
    assertions = fail["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {a["assertion"] for a in assertions} >= {"expect_column_values_to_be_unique"}
    # The retry completes the same OpenLineage run.
    monkeypatch.delenv("LOCKGATE_FAILPOINTS")
    src.stage("load", "events", run, extracted["raw_path"])
    src.stage("publish", "events", run, extracted["raw_path"])
    events = _of_run(_events(src.settings.lake_root), run.run_id)
    assert [e["eventType"] for e in events] == ["START", "FAIL", "COMPLETE"]
    assert events[-1]["run"]["runId"] == start["run"]["runId"]


def test_openlineage_config_chooses_the_transport_or_disables_it(lake_env, monkeypatch, tmp_path):
    from lockgate import lineage
    from openlineage.client.event_v2 import InputDataset

    run = lineage.TableRun("ns", JOB, "01900000-0000-7000-8000-000000000000", "manual__1", 0, None, None)
    event = lineage.build_event("START", run, [InputDataset(namespace="postgres://h:5432", name="d.s.t")], [])
    target = tmp_path / "elsewhere.jsonl"
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(target), "append": True}),
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "lockgate-test")
    lineage.emit(event, lake_env)
    assert [json.loads(line)["job"]["name"] for line in target.read_text().splitlines()] == [JOB]
    assert not (lake_env.lake_root / "lineage").exists()
    assert lineage.job_namespace() == "lockgate-test"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "True")
    assert lineage.client(lake_env) is None
    lineage.emit(event, lake_env)
    assert len(target.read_text().splitlines()) == 1
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__DISABLED")
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
    lineage.emit(event, lake_env)
    assert len(_events(lake_env.lake_root)) == 1
