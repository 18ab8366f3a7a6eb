"""Checks across runs (lockgate.cross_run): a batch that passes every rule of its suite
can still be a truncated extract, a stalled source or a column that went empty.

The statistics first (no I/O), then the stages end to end on a real PostgreSQL source,
on both warehouses: clean days pass, an anomalous day is recorded in ``lockgate.runs``
and shown on the UI page, and the ``fail`` policy stops the batch.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lockgate import cli, cross_run, pipeline, warehouse
from lockgate.config import CrossRunConfig, parse_source
from lockgate.cross_run import BatchProfile, PastRun
from lockgate.pipeline import RunInfo
from lockgate.quality import QualityError

from tests.conftest import WAREHOUSES

D0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
RULES = CrossRunConfig()


def _past(counts, nulls=None, lags=None) -> list[PastRun]:
    return [
        PastRun(D0 + i * DAY, BatchProfile(c, (lags or {}).get(i, 300.0), {"note": (nulls or {}).get(i, c // 10)}))
        for i, c in enumerate(counts)
    ]


# --- the statistics ---------------------------------------------------------------


def test_a_robust_line_ignores_one_outlier():
    slope, intercept = cross_run.theil_sen([0, 1, 2, 3, 4, 5], [100, 110, 120, 5000, 140, 150])
    assert (slope, intercept) == (10.0, 100.0)


def test_row_count_follows_growth_and_flags_a_truncated_batch():
    growing = _past([1000 + 50 * i for i in range(10)])  # 1000 … 1450: steady growth
    at = D0 + 10 * DAY
    assert cross_run.row_count(BatchProfile(1500), at, growing, RULES).status == "passed"
    truncated = cross_run.row_count(BatchProfile(300), at, growing, RULES)
    assert truncated.status == "warned" and truncated.expected == 1500.0
    assert truncated.message.startswith("300 rows; expected 1,500 (between ")
    assert "trend +50.0 rows a day" in truncated.message
    doubled = cross_run.row_count(BatchProfile(3000), at, growing, RULES)
    assert doubled.status == "warned", "a spike is an anomaly too"
    strict = cross_run.row_count(BatchProfile(300), at, growing, CrossRunConfig(row_count="fail"))
    assert strict.status == "failed"


def test_noise_the_size_of_the_counts_is_not_an_anomaly():
    """Poisson noise of daily counts around 200 (sd ≈ 14): 170 and 240 pass; a band
    from a lucky, flat history would have been too narrow without the floors."""
    flat = _past([200] * 8)
    at = D0 + 8 * DAY
    assert [cross_run.row_count(BatchProfile(n), at, flat, RULES).status for n in (170, 240, 100, 320)] == [
        "passed", "passed", "warned", "warned"]  # fmt: skip


def test_too_little_history_is_skipped_and_says_so():
    result = cross_run.row_count(BatchProfile(10), D0 + 3 * DAY, _past([500, 510, 490]), RULES)
    assert (result.status, result.message) == ("skipped", "3 earlier runs, 5 needed")


def test_a_slice_wider_than_one_interval_is_not_compared():
    past = _past([500] * 6)
    catch_up = BatchProfile(1500, span=3 * 86_400.0)
    result = cross_run.row_count(catch_up, D0 + 6 * DAY, past, RULES, max_span=86_400.0)
    assert result.status == "skipped" and "more than one interval" in result.message
    # and a catch-up among the earlier runs is left out of the history
    mixed = past[:4] + [PastRun(D0 + 4 * DAY, BatchProfile(1500, span=3 * 86_400.0))]
    assert cross_run.row_count(BatchProfile(500, span=86_400.0), D0 + 6 * DAY, mixed, RULES,
                               max_span=86_400.0).message == "4 earlier runs, 5 needed"  # fmt: skip


def test_null_rate_change_per_column():
    past = _past([1000] * 8)  # note: 10% NULL every day
    same = cross_run.null_rates(BatchProfile(1000, null_counts={"note": 115}), past, RULES)
    assert [r.status for r in same] == ["passed"]
    jump = cross_run.null_rates(BatchProfile(1000, null_counts={"note": 900}), past, RULES)
    assert jump[0].status == "warned" and jump[0].column == "note"
    assert jump[0].message == "90.0% NULL; usually 10.0% (between 6.2% and 13.8%, last 8 runs)"
    never = _past([1000] * 8, nulls={i: 0 for i in range(8)})
    assert cross_run.null_rates(BatchProfile(1000, null_counts={"note": 5}), never, RULES)[0].status == "passed"
    assert cross_run.null_rates(BatchProfile(1000, null_counts={"note": 300}), never, RULES)[0].status == "warned"


def test_freshness_lag_that_grows_leaves_the_band():
    at = D0 + 8 * DAY
    past = _past([1000] * 8, lags={i: 240.0 + 30 * (i % 3) for i in range(8)})  # 4–5 minutes
    fine = cross_run.freshness_lag(BatchProfile(1000, freshness_lag=600.0), at, past, RULES, 86_400.0)
    assert fine.status == "passed" and "growing" not in fine.message
    stale = cross_run.freshness_lag(BatchProfile(1000, freshness_lag=6 * 3600.0), at, past, RULES, 86_400.0)
    assert stale.status == "warned"
    assert stale.message.startswith("newest row 6.0 h before the interval end; usually 4 min, at most ")
    # A source falling behind by an hour a day: the trend is named, and it leaves the band.
    behind = _past([1000] * 8, lags={i: 3600.0 * i for i in range(8)})
    late = cross_run.freshness_lag(BatchProfile(1000, freshness_lag=3600.0 * 8), at, behind, RULES, 86_400.0)
    assert late.status == "warned" and late.message.endswith(", growing 60 min a day")
    assert 8 * 3600 < late.high, "inside the band, flagged by its trend"


def test_policies_off_warn_fail():
    past = _past([1000] * 8)
    batch = BatchProfile(100, freshness_lag=300.0, null_counts={"note": 10})
    assert cross_run.evaluate(batch, D0 + 8 * DAY, past, RULES).status == "warned"
    rules = CrossRunConfig(row_count="fail")
    outcome = cross_run.evaluate(batch, D0 + 8 * DAY, past, rules)
    assert outcome.status == "failed" and "row_count failed: 100 rows" in outcome.message()
    off = CrossRunConfig(row_count="off", freshness_lag="off", null_rate="off")
    assert cross_run.evaluate(batch, D0 + 8 * DAY, past, off).results == []
    with pytest.raises(ValueError, match="min_history"):
        CrossRunConfig(history=5, min_history=6)


# --- end to end ---------------------------------------------------------------------

#: Rows per clean day; the anomalous day keeps a fifth of them, stops at noon and
#: leaves ``note`` NULL on nine rows in ten.
PER_DAY = 300


def _day_rows(day: int, rng: random.Random, *, anomalous: bool = False):
    start = (D0 + day * DAY).replace(tzinfo=None)
    count, hours, null_share = (PER_DAY // 5, 12, 0.9) if anomalous else (PER_DAY, 24, 0.1)
    for _ in range(count):
        at = start + timedelta(seconds=rng.uniform(0, hours * 3600 - 120))
        yield (rng.choice(["a", "b", "c"]), None if rng.random() < null_share else "n", rng.randint(1, 99), at)


@pytest.fixture
def events(pg_conn, pg_database, lake_env, spark, monkeypatch):
    table = f"events_{uuid.uuid4().hex[:8]}"
    pg_conn.execute(
        f"CREATE TABLE {table} (id serial PRIMARY KEY, kind text NOT NULL, note text, amount integer NOT NULL, "
        "updated_at timestamp NOT NULL)"
    )
    rng = random.Random(7)
    with pg_conn.cursor() as cur:
        for day in range(7):
            cur.executemany(
                f"INSERT INTO {table} (kind, note, amount, updated_at) VALUES (%s, %s, %s, %s)",
                list(_day_rows(day, rng, anomalous=day >= 5)),
            )
    monkeypatch.setenv("AIRFLOW_CONN_XR_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    return table, lake_env, spark


def _config(table: str, **checks):
    return parse_source(
        {"source": "xr", "connection": "xr_pg", "start_date": "2026-03-01",
         "tables": [{"name": "events", "source_table": table, "primary_key": ["id"], "mode": "append",
                     "cursor": "updated_at", "checks": {"min_history": 4, **checks}}]},
        "xr.yml",
    )  # fmt: skip


def _run_day(config, settings, spark, day: int):
    table = config.tables[0]
    run = RunInfo(run_id=f"scheduled__{(D0 + day * DAY).date()}", interval_start=D0 + day * DAY,
                  interval_end=D0 + (day + 1) * DAY)  # fmt: skip
    extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
    validated = pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings, spark=spark)
    pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
    pipeline.publish_stage(config, table, run, extracted["raw_path"], settings=settings)
    return validated


def _audit(settings, day: int):
    with warehouse.connect(settings, read_only=True) as conn:
        return warehouse.run_status(conn, "xr", "events", f"scheduled__{(D0 + day * DAY).date()}")


@pytest.mark.integration
@pytest.mark.parametrize("lake_env", WAREHOUSES, indirect=True)
def test_an_anomalous_day_is_recorded_shown_and_can_stop_the_load(events):
    from lockgate.ui import status

    table, settings, spark = events
    config = _config(table)
    for day in range(5):
        _run_day(config, settings, spark, day)
    first, clean = _audit(settings, 0), _audit(settings, 4)
    assert first["cross_run_status"] == "skipped"  # no history yet
    assert clean["cross_run_status"] == "passed", clean["cross_run_checks"]
    assert json.loads(clean["null_counts"]) == {"amount": 0, "id": 0, "kind": 0, "note": pytest.approx(30, abs=20),
                                                "updated_at": 0}  # fmt: skip
    assert 0 < clean["freshness_lag_seconds"] < 3600

    # Day 5 passes its (built-in) suite but is a fifth of a day, stops at noon, and
    # leaves note empty: warned on each count, recorded, loaded anyway (policy warn).
    validated = _run_day(config, settings, spark, 5)
    assert validated["status"] == "passed"
    audit = _audit(settings, 5)
    assert (audit["status"], audit["validation_status"], audit["cross_run_status"]) == ("published", "passed", "warned")
    checks = {(c["check"], c["column"]): c for c in json.loads(audit["cross_run_checks"])}
    assert checks["row_count", None]["status"] == "warned" and checks["row_count", None]["observed"] == PER_DAY // 5
    assert checks["freshness_lag", None]["status"] == "warned"
    assert checks["null_rate", "note"]["status"] == "warned" and checks["null_rate", "kind"]["status"] == "passed"
    assert audit["rows_loaded"] == PER_DAY // 5
    # The UI page's run row says so, with the anomalies.
    point = status._run_point(audit)
    assert point.cross_run_status == "warned"
    assert any(n.startswith("row_count warned: 60 rows; expected 300") for n in point.cross_run_notes)
    assert any(n.startswith("null_rate(note) warned: ") for n in point.cross_run_notes)
    # and so does `lockgate runs`.
    out = io.StringIO()
    cli.print_summary(cli.run_summary(settings, "xr"), out=out)
    lines = out.getvalue().splitlines()
    assert "across runs warned" in lines[-1] and "2026-03-06" in lines[-1]
    assert not any("across runs" in line for line in lines[:-1])

    # With `row_count: fail`, the next truncated day stops before the load.
    strict = _config(table, row_count="fail")
    with pytest.raises(QualityError) as info:
        _run_day(strict, settings, spark, 6)
    message = str(info.value)
    assert "xr.events: checks across runs:" in message and "row_count failed: 60 rows; expected 300" in message
    assert "the batch was not loaded" in message
    audit = _audit(settings, 6)
    assert (audit["status"], audit["validation_status"], audit["cross_run_status"]) == ("failed", "failed", "failed")
    with warehouse.connect(settings, read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM xr.events").fetchone()[0]
    assert rows == 5 * PER_DAY + PER_DAY // 5  # day 6 is not in the warehouse
