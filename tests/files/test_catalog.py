"""The lake catalog follows new data (issue 16, item 5): after each run the lake view
has the new partition and schema version, `lockgate catalog` lists them, and a query
for one day reads only that day's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.files.conftest import CLICKS_SCHEMA, clicks, day, files_source, rows, run_interval, tsv

ROOT = Path(__file__).resolve().parents[2]


def _land_days(landing, days: int, per_day: int = 2) -> None:
    for n in range(days):
        for part in range(per_day):
            first = 1 + (n * per_day + part) * 100
            landing.drop(f"clicks/d{n}-{part}.tsv.gz", tsv(clicks(first, 100, day(n))), day(n) + timedelta(hours=6))


def _landed_and_run(tmp_path: Path, days: int):
    """A local landing zone with ``days`` days of clicks, each day's interval run once."""
    from tests.files.conftest import Landing

    root = tmp_path / "landing"
    landing = Landing(str(root), root, False)
    config = files_source(landing)
    _land_days(landing, days)
    for n in range(days):
        run_interval(config, day(n), day(n + 1))
    return landing, config


def files_read(settings, sql: str, tmp_path: Path) -> tuple[list[tuple], int]:
    """The query's rows and how many Parquet files DuckDB opened for it (its profiler)."""
    from lockgate import warehouse

    profile = tmp_path / "profile.json"
    with warehouse.connect(settings, read_only=True) as conn:
        conn.execute("PRAGMA enable_profiling = 'json'")
        conn.execute(f"PRAGMA profiling_output = '{profile}'")
        result = conn.execute(sql).fetchall()
        conn.execute("PRAGMA disable_profiling")
    return result, _total_files(json.loads(profile.read_text()))


def _total_files(node: dict) -> int:
    own = int((node.get("extra_info") or {}).get("Total Files Read", 0) or 0)
    return own + sum(_total_files(child) for child in node.get("children", []))


def test_a_query_for_one_day_reads_only_that_days_files(lake_env, tmp_path):
    _landed_and_run(tmp_path, 3)
    one_day, opened = files_read(
        lake_env, f"SELECT count(*) FROM lake.web__clicks WHERE _lockgate_interval = DATE '{day(1).date()}'", tmp_path
    )
    assert one_day == [(200,)] and opened == 2  # day 1's two files, not the other days' four
    everything, opened = files_read(lake_env, "SELECT count(*) FROM lake.web__clicks", tmp_path)
    assert everything == [(600,)] and opened == 6
    by_day = rows(lake_env, "SELECT _lockgate_interval, count(*) FROM lake.web__clicks GROUP BY 1 ORDER BY 1")
    assert [(d.isoformat(), c) for d, c in by_day] == [(day(n).date().isoformat(), 200) for n in range(3)]


def test_lockgate_catalog_lists_partitions_and_schema_versions(lake_env, tmp_path, monkeypatch):
    from tests.files.conftest import Landing

    root = tmp_path / "landing"
    landing = Landing(str(root), root, False)
    _land_days(landing, 2)
    run_interval(files_source(landing), day(0), day(1))
    wider = {**CLICKS_SCHEMA, "country": "string"}  # the application adds a column on day 1
    run_interval(files_source(landing, files={"schema": wider}), day(1), day(2))
    sources = tmp_path / "sources"
    sources.mkdir()
    spec = {"source": "web", "start_date": "2026-03-01", "landing": str(root),
            "tables": [{"name": "clicks", "mode": "append", "files": {"pattern": "clicks/*.tsv.gz", "schema": wider}}]}
    (sources / "web.yml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(sources))
    out = subprocess.run([sys.executable, "-m", "lockgate.cli", "catalog", "web", "--partitions"], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ,
                         "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}"}).stdout  # fmt: skip
    assert "lake.web__clicks" in out and " 2 " in out.splitlines()[1] and " 400 " in out.splitlines()[1]
    assert f"schema since {day(0).date()}: event_id bigint" in out
    assert f"schema since {day(1).date()}: " in out and "country string" in out
    assert f"_lockgate_interval={day(1).date()}  200 rows  2 file(s)" in out


@pytest.mark.parametrize("lake_env", ["pg_warehouse"], indirect=True)
def test_a_postgres_warehouse_takes_each_file_once_and_lockgate_sql_lake_queries_the_lake(
    lake_env, tmp_path, monkeypatch, capsys
):
    """Files tables on PostgreSQL: the ledger lives there, a re-run of an interval reads
    its own files again without doubling them; ``lockgate sql --lake`` queries the lake
    in DuckDB, since PostgreSQL holds no lake views."""
    from lockgate import cli

    from tests.files.conftest import SOURCE

    landing, config = _landed_and_run(tmp_path, 2)
    run_interval(config, day(0), day(1), version=1)  # a reprocess of day 0
    assert rows(lake_env, f"SELECT count(*), count(DISTINCT event_id) FROM {SOURCE}.clicks") == [(400, 400)]
    assert rows(lake_env, "SELECT count(DISTINCT file_key) FROM lockgate.landed_files") == [(4,)]
    sources = tmp_path / "sources"
    sources.mkdir()
    spec = {"source": SOURCE, "start_date": "2026-03-01", "landing": landing.location, "tables": [
        {"name": "clicks", "mode": "append", "files": {"pattern": "clicks/*.tsv.gz", "schema": CLICKS_SCHEMA}}]}
    (sources / f"{SOURCE}.yml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(sources))
    assert cli.main(["sql", "--lake", f"SELECT count(*) AS n FROM lake.{SOURCE}__clicks"]) == 0
    shown = capsys.readouterr().out
    assert "400" in shown.split(), shown  # the newest raw version of each interval
