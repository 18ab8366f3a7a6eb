"""Run ids never reach file paths unchecked: hostile ids through the real REST API.

Airflow accepts user-chosen run ids matching ``[scheduler] allowed_run_id_pattern``
(default ``^[A-Za-z0-9_.~:+-]+$``, up to 250 characters; ``..`` only with ``[core]
allow_double_dot_in_ids``, which the harness sets as deployments with older ids do).
Lockgate names a run's raw folder after its run id, so ids such as ``.``, ``..``, a
250-character id, ids that differ only in characters a folder name cannot keep, or an
id that looks like Lockgate's own temporary folder must each still get one folder of
their own, exactly at ``lake/raw/<source>/<table>/<interval>/<folder>``, without
touching the versions stored before them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.reprocessing.airflow_harness import (
    SCENARIO_COLUMNS,
    AirflowStack,
    ScenarioSource,
    create_scenario_tables,
    file_digests,
    scenario_yaml,
    sealed_folders,
    table_mismatch,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

SOURCE = "rid"
DAG_ID = f"ingest_{SOURCE}"
DAY = datetime(2026, 6, 1, tzinfo=UTC)
COLUMNS = SCENARIO_COLUMNS["events"]

HOSTILE_RUN_IDS = [
    ".",  # the interval folder itself
    "..",  # the table folder
    "...",
    "a:b",  # ":" and "+" are replaced by the same character:
    "a+b",  # distinct ids, one folder
    ".tmp-a_b-1",  # the name of a half-written folder of run "a_b"
    "z" * 249 + "1",  # 250 characters: Airflow's longest run id ...
    "z" * 249 + "2",  # ... and one differing only in its last character
]

#: Ids Airflow accepts but its execution API cannot serve (see the test).
AIRFLOW_CANNOT_FINISH = {".", ".."}

# Airflow gives a manual run task instances only if its logical date is not before the
# DAG's start_date; unpausing makes one scheduled run (today's latest interval) as well.
SOURCE_YAML = scenario_yaml(
    SOURCE, "Run-id scenario source", start_date="2026-06-01", tables=("events",), max_active_runs=6, retries=0
)


def populate(conn) -> None:
    create_scenario_tables(conn, ("events",))
    day = DAY.replace(tzinfo=None)
    rows = [(i + 1, i % 7, "view", i * 3, day + timedelta(seconds=i * 1500)) for i in range(50)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s)", rows)


AIRFLOW_SOURCES = [ScenarioSource(SOURCE, SOURCE_YAML, populate)]


def short(run_id: str | None) -> str:
    if run_id is None or len(run_id) <= 40:
        return repr(run_id)
    return repr(f"{run_id[:12]}…{run_id[-6:]} ({len(run_id)} chars)")


def run_of(folder: Path) -> str | None:
    """The run id a sealed folder's manifest names."""
    return json.loads((folder / "_manifest.json").read_text(encoding="utf-8")).get("run_id")


def damaged(folder: Path) -> str | None:
    """What is wrong with a sealed folder's files against its manifest, if anything."""
    import hashlib

    manifest = json.loads((folder / "_manifest.json").read_text(encoding="utf-8"))
    for item in manifest.get("files", []):
        path = folder / item["path"]
        if not path.is_file():
            return f"{item['path']} is missing"
        if "sha256" in item and hashlib.sha256(path.read_bytes()).hexdigest() != item["sha256"]:
            return f"{item['path']} does not match its checksum"
    return None


def test_hostile_run_ids_each_get_one_folder_inside_their_interval(airflow_stack):
    airflow: AirflowStack = airflow_stack.airflow
    lake_root: Path = airflow_stack.lake_root
    table_dir = lake_root / "raw" / SOURCE / "events"

    # 1. An earlier version of the interval, by an ordinary backfill run (and the
    #    scheduled run of the latest interval that unpausing makes).
    day = DAY.date().isoformat()
    airflow.create_backfill(DAG_ID, day, day, expected_runs=1)
    airflow.set_paused(DAG_ID, False)
    runs = airflow.wait_runs(
        DAG_ID,
        lambda rs: {"backfill", "scheduled"} <= {r["run_type"] for r in rs}
        and all(r["state"] in ("success", "failed") for r in rs),
        what="the backfill run and the scheduled run",
        timeout=600,
    )
    assert sorted((r["run_type"], r["state"]) for r in runs) == [("backfill", "success"), ("scheduled", "success")], runs
    backfill_run_id = next(r["run_id"] for r in runs if r["run_type"] == "backfill")
    earlier = {folder: file_digests(folder) for folder in sealed_folders(lake_root, SOURCE)}
    backfill_folders = [f for f in earlier if run_of(f) == backfill_run_id]
    assert len(backfill_folders) == 1, earlier
    interval_dir = backfill_folders[0].parent
    assert interval_dir.parent == table_dir, interval_dir

    # 2. Runs of the same interval with hostile ids, through the REST API.
    for number, run_id in enumerate(HOSTILE_RUN_IDS, start=1):
        created = airflow.trigger_run(
            DAG_ID, run_id, logical_date=DAY + timedelta(minutes=number), interval=(DAY, DAY + timedelta(days=1))
        )
        assert created["dag_run_id"] == run_id, created
    runs = airflow.wait_runs(
        DAG_ID,
        lambda rs: set(HOSTILE_RUN_IDS) <= {r["run_id"] for r in rs}
        and all(r["state"] in ("success", "failed") for r in rs),
        what=f"{len(HOSTILE_RUN_IDS)} runs with hostile ids",
        timeout=900,
        poll=3,
    )
    wanted = {r["run_id"] for r in runs}
    of_the_day = {r["run_id"] for r in runs if r["data_interval_start"] == DAY}
    assert of_the_day == {backfill_run_id, *HOSTILE_RUN_IDS}, of_the_day

    problems: list[str] = []
    for run in runs:
        if run["state"] != "success":
            errors = airflow.task_errors(DAG_ID, run["run_id"])
            # Airflow 3.3's own task runner cannot finish a run named "." or "..": the
            # execution API URL of its XCom push normalises the id away (HTTP 404 for "..",
            # a 307 redirect for "."), after Lockgate's extract has sealed its folder. The
            # folder checks below still apply.
            if run["run_id"] in AIRFLOW_CANNOT_FINISH and errors and all("API_SERVER_ERROR" in e for e in errors):
                continue
            problems.append(f"run {short(run['run_id'])} {run['state']}: {'; '.join(errors) or 'see the task logs'}")

    # Every sealed folder anywhere in the lake sits at raw/<source>/<table>/<interval>/<folder>.
    for manifest in sorted(lake_root.rglob("_manifest.json")):
        parts = manifest.relative_to(lake_root).parts
        if len(parts) != 6 or parts[0] != "raw":
            problems.append(f"a manifest outside raw/<source>/<table>/<interval>/<folder>/: {manifest}")

    # Each run has one sealed folder of its own in the interval folder; distinct ids, distinct folders.
    by_run: dict[str, list[Path]] = {}
    for folder in sealed_folders(lake_root, SOURCE):
        run_id = run_of(folder)
        by_run.setdefault(run_id, []).append(folder)
        if run_id in of_the_day and folder.parent != interval_dir:
            problems.append(f"run {short(run_id)} sealed {folder}, not a folder of {interval_dir}")
        if reason := damaged(folder):
            problems.append(f"the version {folder.name[:60]} of run {short(run_id)} is damaged: {reason}")
    for run_id in sorted(wanted):
        folders = by_run.get(run_id, [])
        if len(folders) != 1:
            problems.append(
                f"run {short(run_id)} has {len(folders)} sealed folders of its own in the lake "
                f"(expected 1): {[f.name[:60] for f in folders]}"
            )
    unknown = set(by_run) - wanted
    if unknown:
        problems.append(f"sealed folders of unknown runs {sorted(map(str, unknown))}")

    # The version stored before the hostile runs is intact.
    for folder, digests in earlier.items():
        if not folder.exists():
            problems.append(f"the earlier version {folder} is gone")
        elif file_digests(folder) != digests:
            problems.append(f"the earlier version {folder} was changed")

    if message := table_mismatch(
        airflow_stack.databases[SOURCE], airflow_stack.warehouse, SOURCE, "events", COLUMNS, "event_id"
    ):
        problems.append(f"warehouse differs from the source: {message}")

    assert not problems, "hostile run ids:\n" + "\n".join(problems)
