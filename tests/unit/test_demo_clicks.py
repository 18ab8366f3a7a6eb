"""The demo's click stream (issue 16, item 6): gzip TSV files in the landing zone of
the ``shop`` source, several a day, written again byte for byte by a second demo, and
read by the ``clicks`` table of ``dags/sources/shop.yml`` exactly once per day."""

from __future__ import annotations

import csv
import gzip
import io
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lockgate import pipeline, warehouse
from lockgate.cli import DEMO_FILES_TABLE, airflow_env, demo_landing_path
from lockgate.config import load_source
from lockgate.demo.clicks import COLUMNS, FILES_PER_DAY, write_clicks
from lockgate.demo.shop_db import create_shop_db
from lockgate.records import RunInfo
from lockgate.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START = date(2026, 1, 1)


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "shop.db"
    create_shop_db(path, scale=0.02, start=START, days=2)
    return path


def _state(root: Path) -> dict[str, tuple[bytes, float]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime) for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict[str, str]]:
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_a_second_demo_writes_the_same_files_with_the_same_times(shop_db, tmp_path):
    landing = tmp_path / "landing"
    first = write_clicks(landing, shop_db, start=START, days=2)
    assert len(first) == 2 * FILES_PER_DAY and all(f.written for f in first)
    assert sorted(f.key for f in first) == [f"clicks/2026-01-0{d}/part-{n}.tsv.gz" for d in (1, 2) for n in range(4)]
    before = _state(landing)
    assert set(before) == {f.key for f in first}  # no temporary file left behind
    again = write_clicks(landing, shop_db, start=START, days=2)
    assert [f.written for f in again] == [False] * len(first)
    assert _state(landing) == before
    # A day's files do not depend on how many days are written at once.
    alone = tmp_path / "alone"
    write_clicks(alone, shop_db, start=date(2026, 1, 2), days=1)
    assert _state(alone) == {k: v for k, v in before.items() if "2026-01-02" in k}
    # A file changed by hand (or whose time moved) is put back as it was.
    part = landing / first[0].key
    part.write_bytes(b"garbage")
    (landing / first[1].key).touch()
    repaired = write_clicks(landing, shop_db, start=START, days=2)
    assert [f.written for f in repaired][:2] == [True, False]
    assert _state(landing) == before


def test_each_file_lands_inside_its_day_after_its_events_with_ids_the_database_has(shop_db, tmp_path):
    landing = tmp_path / "landing"
    files = write_clicks(landing, shop_db, start=START, days=2)
    with sqlite3.connect(shop_db) as conn:
        customers = {r[0] for r in conn.execute("SELECT customer_id FROM customers")}
        products = {r[0] for r in conn.execute("SELECT product_id FROM products")}
    event_ids: list[int] = []
    anonymous = 0
    for f in files:
        day = datetime.fromisoformat(f.key.split("/")[1]).replace(tzinfo=UTC)
        path = landing / f.key
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        assert modified == f.modified and day <= modified < day + timedelta(days=1), f.key
        rows = _rows(path)
        assert len(rows) == f.rows > 0 and tuple(rows[0]) == COLUMNS
        times = [datetime.fromisoformat(r["at"]) for r in rows]
        assert all(r["at"].endswith("Z") for r in rows)
        assert times == sorted(times) and day <= times[0] and times[-1] < modified, f.key  # written before it closed
        for r in rows:
            event_ids.append(int(r["event_id"]))
            if r["customer_id"]:
                assert int(r["customer_id"]) in customers
            else:
                anonymous += 1
            assert not r["product_id"] or int(r["product_id"]) in products
            assert len(r["session_id"]) == 16 and r["page"].startswith("/")
    assert len(event_ids) == len(set(event_ids)) and min(event_ids) > 2**31  # 64-bit ids
    assert 0 < anonymous < len(event_ids)


def test_the_demo_landing_zone_is_where_the_clicks_task_and_airflow_look(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_LANDING_ROOT", str(tmp_path / "zone"))
    settings = load_settings()
    assert demo_landing_path(settings) == tmp_path / "zone" / "shop"
    assert airflow_env(settings)["LOCKGATE_LANDING_ROOT"] == str(tmp_path / "zone")
    monkeypatch.delenv("LOCKGATE_LANDING_ROOT")
    settings = load_settings()
    assert airflow_env(settings)["LOCKGATE_LANDING_ROOT"] == str(settings.project_root / "landing")
    assert demo_landing_path(settings) == settings.project_root / "landing" / "shop"


def _run_day(config, table, day: date, version: int = 0) -> dict:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    run = RunInfo(f"scheduled__{start.isoformat()}", start, start + timedelta(days=1), run_created=start, version=version)
    extracted = pipeline.extract_stage(config, table, run)
    validated = pipeline.validate_stage(config, table, run, extracted["raw_path"])
    loaded = pipeline.load_stage(config, table, run, extracted["raw_path"])
    pipeline.publish_stage(config, table, run, extracted["raw_path"])
    return {"extracted": extracted, "validated": validated, "loaded": loaded}


def _ledger(settings) -> list[tuple]:
    with warehouse.connect(settings, read_only=True) as conn:
        return conn.execute(
            "SELECT file_key, size, modified, sha256, interval_start, rows_in, rows_parsed, rows_rejected, status, "
            "taken_at FROM lockgate.landed_files ORDER BY file_key"
        ).fetchall()


def test_the_shop_clicks_table_takes_each_day_once_and_a_second_demo_changes_nothing(shop_db, lake_env, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    monkeypatch.setenv("LOCKGATE_LANDING_ROOT", str(tmp_path / "landing"))
    settings = load_settings()
    config = load_source(PROJECT_ROOT / "dags" / "sources", "shop")
    table = config.table(DEMO_FILES_TABLE)
    files = write_clicks(demo_landing_path(settings), shop_db, start=START, days=2)
    per_day = {d: sum(f.rows for f in files if f"/{d}/" in f.key) for d in ("2026-01-01", "2026-01-02")}
    first = _run_day(config, table, START)
    assert first["validated"]["status"] == "passed"
    assert first["extracted"]["rows"] == first["loaded"]["rows_loaded"] == per_day["2026-01-01"]
    second = _run_day(config, table, START + timedelta(days=1))
    assert second["loaded"]["rows_loaded"] == per_day["2026-01-02"]  # the first day's files are not taken again
    ledger = _ledger(settings)
    assert [(r[0], r[7], r[8]) for r in ledger] == [(f.key, 0, "taken") for f in sorted(files, key=lambda f: f.key)]
    assert {r[0]: r[6] for r in ledger} == {f.key: f.rows for f in files}  # rows parsed, per file
    with warehouse.connect(settings, read_only=True) as conn:
        before = warehouse.table_fingerprint(conn, "shop", "clicks")
    assert before[0] == sum(per_day.values())
    # A second demo: the same files again, and the first day run again (a new version).
    assert not any(f.written for f in write_clicks(demo_landing_path(settings), shop_db, start=START, days=2))
    again = _run_day(config, table, START, version=1)
    assert again["extracted"]["rows"] == per_day["2026-01-01"]
    with warehouse.connect(settings, read_only=True) as conn:
        assert warehouse.table_fingerprint(conn, "shop", "clicks") == before
    assert _ledger(settings) == ledger
