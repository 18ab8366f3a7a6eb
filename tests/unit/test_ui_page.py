"""The Lockgate page's parts without Airflow: what it reads, how it renders, what it serves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from lockgate import lake, warehouse
from lockgate.config import parse_source
from lockgate.incremental import TableState
from lockgate.settings import load_settings
from lockgate.ui import charts, docs, pages
from lockgate.ui.status import RunPoint, TableStatus, source_status

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SOURCE = {
    "source": "ui", "connection": "ui_db", "schedule": "@daily", "start_date": "2026-01-01",
    "tables": [
        {"name": "orders", "primary_key": ["id"], "mode": "merge", "cursor": "updated_at"},
        {"name": "products", "primary_key": ["id"], "mode": "full"},
    ],
}  # fmt: skip


def run(run_id: str, *, loaded: int = 10, status: str = "published", error: str | None = None, day: int = 1) -> RunPoint:
    start = datetime(2026, 2, day, tzinfo=UTC)
    return RunPoint(run_id, 0, start, start, start + timedelta(days=1), status, loaded, loaded, 0, "passed", 0,
                    error, None, 1.5)  # fmt: skip


def table(name: str, runs: list[RunPoint], *, cursor: str | None = "updated_at", cursor_max: str | None = None):
    return TableStatus(name, "merge" if cursor else "full", cursor, TableState(cursor_max=cursor_max), runs, [], [],
                       [], runs[-1].error if runs else None, NOW)  # fmt: skip


def test_freshness_is_the_newest_cursor_or_the_newest_snapshot():
    orders = table("orders", [run("r1")], cursor_max="2026-03-01 09:30:00")
    assert orders.lag_seconds == pytest.approx(2.5 * 3600)
    products = table("products", [run("r1", day=27), run("r2", day=28, status="failed")], cursor=None)
    # Tables without a cursor: the newest *published* snapshot's age.
    assert products.lag_seconds == pytest.approx((NOW - datetime(2026, 2, 27, tzinfo=UTC)).total_seconds())
    assert table("new", [], cursor=None).lag_seconds is None
    assert pages.human_age(None) == "never loaded" and pages.human_age(3 * 86400 + 7200) == "3 d 2 h"


def test_values_from_the_audit_trail_are_escaped_everywhere(lake_env):
    hostile = "<script>alert(1)</script>"
    config = parse_source(SOURCE, "ui.yml")
    status = source_status(lake_env, config)  # no warehouse yet: a note, no rows
    page = pages.source_page("/lockgate", status)
    assert "no warehouse yet" in page
    broken = table("orders", [run(hostile, error=hostile + " failed")])
    html = pages._table_card("/lockgate", "ingest_ui", broken) + charts.rows_chart(broken.runs, title=hostile)
    assert "<script>" not in html and "&lt;script&gt;" in html
    # A run id travels to the Data Docs route as a query parameter, encoded.
    link = pages.docs_link("/lockgate", "ingest_ui", "orders", run("a/../b&c=d"))
    assert "a%2F..%2Fb%26c%3Dd" in link


def test_checks_across_runs_show_in_the_runs_table_with_their_anomalies():
    from dataclasses import replace

    from lockgate.ui.status import _cross_run_notes

    recorded = json.dumps([
        {"check": "row_count", "column": None, "status": "warned", "message": "60 rows; expected 300 <b>"},
        {"check": "null_rate", "column": "note", "status": "passed", "message": "10.0% NULL"},
        {"check": "null_rate", "column": "kind", "status": "failed", "message": "90.0% NULL"},
    ])  # fmt: skip
    notes = _cross_run_notes(recorded)
    assert notes == ("row_count warned: 60 rows; expected 300 <b>", "null_rate(kind) failed: 90.0% NULL")
    assert _cross_run_notes("not json") == () and _cross_run_notes(None) == ()
    quiet = replace(run("r1"), cross_run_status="skipped")
    noisy = replace(run("r2", day=2), cross_run_status="warned", cross_run_notes=notes)
    html = pages._table_card("/lockgate", "ingest_ui", table("orders", [quiet, noisy]))
    assert "<th>across runs</th>" in html
    assert "<td class='warn cross-run' title='row_count warned: 60 rows; expected 300 &lt;b&gt;" in html
    assert "<td class='muted cross-run' title=''>skipped</td>" in html
    assert "Checks across runs in the last run:" in html and "<li>null_rate(kind) failed: 90.0% NULL</li>" in html


def test_chart_scale_and_bars():
    assert [charts._nice_max(v) for v in (0, 1, 3, 7, 120, 5000)] == [1, 1, 5, 10, 200, 5000]
    svg = charts.rows_chart([run("r1", loaded=50), run("r2", loaded=100)], title="t")
    assert svg.count("class='loaded'") == 2 and ">100<" in svg
    assert "No runs" in charts.rows_chart([], title="t")


@pytest.fixture
def settings(lake_env):
    return load_settings()


@pytest.mark.parametrize("lake_env", ["local", "s3", "pg_warehouse"], indirect=True)
def test_status_reads_the_warehouse_and_the_lake(settings):
    config = parse_source(SOURCE, "ui.yml")
    with warehouse.connect(settings) as conn:
        warehouse.record_run(conn, "ui", "orders", "r1", status="published", rows_extracted=7, rows_loaded=7,
                             error=None, interval_start=NOW - timedelta(days=1))  # fmt: skip
        warehouse.record_run(conn, "ui", "orders", "r1", version=1, status="failed", error="boom: source gone")
        warehouse.save_state(conn, "ui", "orders", TableState(watermark=NOW, cursor_max="2026-03-01 11:00:00"))
    folder = lake.RawLocation(settings.lake_root, "ui", "orders", NOW - timedelta(days=1), NOW, "r1").path
    folder.mkdir(parents=True)
    (folder / lake.MANIFEST).write_text(json.dumps({"run_id": "r1", "rows": 7, "sealed_at": "2026-03-01T00:00:00"}))
    status = source_status(settings, config, now=NOW)
    orders = status.tables[0]
    assert [r.label for r in orders.runs] == ["r1", "r1 (v1)"]
    assert orders.last_error == "boom: source gone"
    assert orders.state.watermark == NOW and orders.lag_seconds == 3600
    assert [(i.interval, [v.rows for v in i.versions]) for i in orders.lake_versions] == [(folder.parent.name, [7])]
    assert status.tables[1].runs == [] and status.warehouse_note is None


@pytest.mark.parametrize("lake_env", ["local", "s3"], indirect=True)
def test_data_docs_are_found_by_run_id_and_only_inside_the_site(settings):
    from lockgate.pipeline import quality_report_path

    site = settings.lake_root / "quality" / "ui" / "docs" / "validations" / "x"
    site.mkdir(parents=True)
    page = site / "page.html"
    page.write_text("<link href='../../static/styles/data_docs_custom_styles.css'>"
                    "<script src='https://code.jquery.com/jquery-3.7.1.min.js'></script>")  # fmt: skip
    report = quality_report_path(settings, "ui", "orders", "run/1", 0)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"docs_page": str(page)}))
    html = docs.data_docs_page(settings, "ui", "orders", "run/1", 0, "/lockgate/static")
    assert "/lockgate/static/gx/styles/data_docs_custom_styles.css" in html
    assert "https://" not in html
    for name in ("gx/styles/data_docs_custom_styles.css", "vendor/jquery/3.7.1/dist/jquery.min.js"):
        if "jquery" in name:
            name = next(k for k in docs.static_index() if k.startswith("vendor/jquery/"))
        assert docs.static_index()[name].is_file()
    # A report that names a file outside the site (tampered, or an old layout) is refused.
    outside = settings.lake_root / "secret.html"
    outside.write_text("secret")
    report.write_text(json.dumps({"docs_page": str(site / ".." / ".." / ".." / ".." / ".." / "secret.html")}))
    assert docs.data_docs_page(settings, "ui", "orders", "run/1", 0, "/s") is None
    assert docs.data_docs_page(settings, "ui", "orders", "other", 0, "/s") is None
    assert not any(".." in name for name in docs.static_index())
