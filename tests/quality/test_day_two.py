"""Veracity that holds on day two: a suite suggested after the demo's first day passes
every later day and catches injected faults.

The demo source (SQLite, a web shop; days 1 … 31 are used) as it stood after its first day is
what a new user points ``lockgate suggest-suite`` at, for every database table. The
later 30 days are extracted by Lockgate (Spark, the table's own settings) and split
into the daily batches the scheduled runs would read (the cursor slice with its
lookback; the snapshot of a ``full`` table); each is validated by the suggested suite
on the engine a daily batch gets (GX's pandas engine: at most 50,000 rows) and by the
checks across runs against the days before it. No false alarm is allowed; each fault
of the corpus must be caught by the rule or check meant to catch it. The report
(true and false positives) is printed and written to ``day_two.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lockgate import cross_run, lake, pipeline, quality
from lockgate.config import load_source
from lockgate.cross_run import BatchProfile, PastRun
from lockgate.pipeline import RunInfo

pytestmark = pytest.mark.integration

START = date(2026, 1, 1)
DAYS = 31
DAY = timedelta(days=1)
FIRST_END = datetime(2026, 1, 2, tzinfo=UTC)
TABLES = ("customers", "products", "orders", "order_items", "payments")
PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Fault:
    """A fault injected into one later day's batch, and what must catch it."""

    table: str
    day: int  # 2 … 31
    what: str
    caught_by: str  # a rule's expectation type and column, or a cross-run check

    def inject(self, df):
        df = df.copy()
        rows = df.index[: max(1, len(df) // 50)]
        if self.what == "NULL in a NOT NULL column":
            df.loc[rows, "customer_id"] = None
        elif self.what == "duplicate keys":
            df = df.iloc[list(range(len(df))) + [0, 1]]
        elif self.what == "out-of-domain status":
            df.loc[rows, "status"] = "lost"
        elif self.what == "negative amounts":
            df.loc[rows, "amount"] = -12.5
        elif self.what == "truncated batch":
            df = df.iloc[: len(df) // 5]
        elif self.what == "NULL rate jump":
            df.loc[df.index[: len(df) * 3 // 5], "city"] = None
        return df.reset_index(drop=True)


FAULTS = [
    Fault("orders", 10, "NULL in a NOT NULL column", "expect_column_values_to_not_be_null(customer_id)"),
    Fault("payments", 14, "duplicate keys", "expect_column_values_to_be_unique(payment_id)"),
    Fault("orders", 18, "out-of-domain status", "expect_column_values_to_be_in_set(status)"),
    Fault("payments", 22, "negative amounts", "expect_column_values_to_be_between(amount)"),
    Fault("order_items", 26, "truncated batch", "row_count"),
    Fault("customers", 28, "NULL rate jump", "null_rate(city)"),
]


def _first_day_copy(full: Path, target: Path) -> None:
    """The source as it stood when the first day ended: rows created since are gone."""
    shutil.copy(full, target)
    with sqlite3.connect(target) as conn:
        for table in TABLES:
            conn.execute(f"DELETE FROM {table} WHERE created_at >= '2026-01-02'")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, spark):
    from lockgate import cli
    from lockgate.demo.shop_db import create_shop_db
    from lockgate.settings import load_settings

    folder = tmp_path_factory.mktemp("day_two")
    full, first = folder / "shop.db", folder / "shop_day1.db"
    # One day more than is ingested: the generator moves every update that would fall
    # after its window onto its last day (a spike no real source has).
    create_shop_db(full, start=START, days=DAYS + 1)
    _first_day_copy(full, first)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LOCKGATE_LAKE_ROOT", str(folder / "lake"))
        env.setenv("LOCKGATE_WAREHOUSE", str(folder / "warehouse" / "warehouse.duckdb"))
        env.setenv("LOCKGATE_EXPECTATIONS_DIR", str(folder / "expectations"))
        env.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{first}")
        summaries = {}
        for table in TABLES:  # as a new user does, after the first day
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert cli.main(["suggest-suite", "shop", table]) == 0
            summaries[table] = out.getvalue()
        env.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{full}")
        settings = load_settings()
        config = load_source(PROJECT / "dags" / "sources", "shop")
        batches, schemas = {}, {}
        for name in TABLES:
            batches[name], schemas[name] = _later_batches(config, config.table(name), settings, spark)
        suites = {t: quality.load_suite(settings.expectations_dir, f"shop/{t}") for t in TABLES}
        yield config, batches, schemas, suites, summaries, folder


def _later_batches(config, table, settings, spark):
    """{day: DataFrame} of the daily batches of days 1 … 31, read by one extract."""
    run = RunInfo(run_id=f"manual__{table.name}", interval_start=datetime(2026, 1, 1, tzinfo=UTC),
                  interval_end=FIRST_END + (DAYS - 1) * DAY)  # fmt: skip
    extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
    manifest = lake.read_manifest(extracted["raw_path"])
    assert quality.IN_PROCESS_ROWS >= manifest["rows"] / (DAYS - 2)
    rows = quality.read_batch_pandas(lake.data_files(extracted["raw_path"], manifest))
    cursor = _utc(rows[table.cursor or "created_at"])
    batches = {}
    for day in range(1, DAYS + 1):
        end = FIRST_END + (day - 1) * DAY
        keep = (cursor < end) & ((cursor >= end - DAY - table.lookback) if table.cursor else True)
        batches[day] = rows[keep].reset_index(drop=True)
    return batches, manifest["schema"]


def _utc(series):
    import pandas as pd

    return pd.to_datetime(series, utc=True)


def _profile(df, table, day: int) -> BatchProfile:
    end = FIRST_END + (day - 1) * DAY
    lag = None
    if table.cursor and len(df):
        lag = (end - _utc(df[table.cursor]).max().to_pydatetime()).total_seconds()
    nulls = {str(c): int(n) for c, n in df.isna().sum().items()}
    span = (DAY + table.lookback).total_seconds() if table.cursor else None
    return BatchProfile(len(df), lag, nulls, span)


def _alarms(df, table, day: int, suite, past: list[PastRun]) -> list[str]:
    """What flags this batch: broken rules (``type(column)``) and anomalous checks."""
    report = quality.validate_dataframe(df, suite, table=f"shop.{table.name}", row_count=len(df))
    flags = [f"{r.expectation}({r.kwargs.get('column') or r.kwargs.get('column_list')})" for r in report.failed_rules()]
    span = (DAY + table.lookback).total_seconds() if table.cursor else None
    outcome = cross_run.evaluate(_profile(df, table, day), FIRST_END + (day - 1) * DAY, past, table.checks,
                                 interval_seconds=DAY.total_seconds(), max_span=span)  # fmt: skip
    flags += [f"{r.check}({r.column})" if r.column else r.check for r in outcome.anomalies()]
    return flags


def test_a_suite_suggested_on_day_one_holds_for_thirty_days_and_catches_the_faults(demo):
    config, batches, schemas, suites, summaries, folder = demo
    report = {"clean_days": {}, "false_alarms": [], "faults": []}
    for name in TABLES:
        table, suite = config.table(name), suites[name]
        # A daily batch with these rules is validated in process by the pipeline too.
        assert quality.in_process_reason(suite, schemas[name]) is None, name
        past = [PastRun(FIRST_END, _profile(batches[name][1], table, 1))]
        for day in range(2, DAYS + 1):
            df = batches[name][day]
            for flag in _alarms(df, table, day, suite, past):
                report["false_alarms"].append(f"{name} day {day}: {flag}")
            for fault in (f for f in FAULTS if f.table == name and f.day == day):
                flags = _alarms(fault.inject(df), table, day, suite, past)
                report["faults"].append({"table": name, "day": day, "fault": fault.what, "expected": fault.caught_by,
                                         "flagged_by": flags, "caught": fault.caught_by in flags})  # fmt: skip
            past = [*past, PastRun(FIRST_END + (day - 1) * DAY, _profile(df, table, day))][-table.checks.history :]
        report["clean_days"][name] = DAYS - 1
    caught = sum(f["caught"] for f in report["faults"])
    report["summary"] = {
        "batches": sum(report["clean_days"].values()), "false_positives": len(report["false_alarms"]),
        "true_positives": caught, "faults": len(FAULTS), "rules": {t: len(s["expectations"]) for t, s in suites.items()},
    }  # fmt: skip
    text = json.dumps(report, indent=2)
    (folder / "day_two.json").write_text(text, encoding="utf-8")
    print(text)
    assert report["false_alarms"] == [], "a clean later day was flagged"
    missed = [f for f in report["faults"] if not f["caught"]]
    assert missed == [] and len(report["faults"]) == len(FAULTS), missed
    # Every suite has rules worth having, and the summary says why for each column.
    assert all(len(s["expectations"]) >= 3 for s in suites.values())
    assert "status" in summaries["orders"] and "total_amount" in summaries["orders"]
