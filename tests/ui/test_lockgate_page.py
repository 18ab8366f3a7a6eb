"""The Lockgate page in a real Airflow: its routes' security, and the page in a browser.

The shared Airflow stack (api-server, scheduler, dag-processor, real users) serves the
demo's ``shop`` source, built by the demo's own generator (SQLite, small scale), and
the Lockgate plugin from ``plugins/``. Headless Debian Chromium, driven by Playwright,
logs in, reads the page, triggers ``ingest_shop`` from the trigger form with one table
and ``full_refresh`` on, and sees the run on the page. Screenshots go to
``test-artifacts/ui/`` (or ``$LOCKGATE_TEST_ARTIFACTS/ui``).
"""

from __future__ import annotations

import os
import urllib.parse
from datetime import date
from pathlib import Path

import pytest

from tests.reprocessing.airflow_harness import PROJECT_ROOT, USERS, AirflowStack, ScenarioSource

DAG_ID = "ingest_shop"
FIRST_DAY = date(2026, 1, 1)
ARTIFACTS = Path(os.environ.get("LOCKGATE_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts")) / "ui"
CHROMIUM = "/usr/bin/chromium"


#: The demo's click-stream landing zone, written beside its database by shop_database
#: (which the stack calls before it writes the source file).
LANDING: dict[str, Path] = {}


def shop_yaml() -> str:
    text = (PROJECT_ROOT / "dags" / "sources" / "shop.yml").read_text(encoding="utf-8")
    assert "connection: shop_db" in text and "\nlanding: shop\n" in text
    return text.replace("connection: shop_db", "connection: {connection}").replace(
        "\nlanding: shop\n", f"\nlanding: {LANDING['shop']}\n"
    )


def shop_database(folder: Path) -> str:
    from lockgate.demo.clicks import write_clicks
    from lockgate.demo.shop_db import create_shop_db

    path = folder / "shop.db"
    create_shop_db(path, scale=0.05, start=FIRST_DAY, days=2)
    LANDING["shop"] = folder / "landing"
    write_clicks(LANDING["shop"], path, start=FIRST_DAY, days=2)
    return f"sqlite:///{path}"


AIRFLOW_SOURCES = [ScenarioSource("shop", shop_yaml, connection_uri=shop_database)]


@pytest.fixture(scope="module")
def shop(airflow_stack):
    """The demo source with its first two days ingested by a backfill, and the scheduled
    run of the newest interval that unpausing makes."""
    airflow: AirflowStack = airflow_stack.airflow
    airflow.create_backfill(DAG_ID, "2026-01-02", "2026-01-03", expected_runs=2)
    airflow.set_paused(DAG_ID, False)
    runs = airflow.wait_runs(
        DAG_ID,
        lambda rs: {"backfill", "scheduled"} <= {r["run_type"] for r in rs}
        and all(r["state"] in ("success", "failed") for r in rs),
        what="the two-day backfill of ingest_shop and the scheduled run", timeout=900,
    )
    failed = [r for r in runs if r["state"] != "success"]
    assert not failed, f"backfill runs failed: {failed}\n{airflow.diagnostics(DAG_ID)}"
    return airflow_stack


# -- the routes' security --------------------------------------------------------------

ROUTES = [
    "/lockgate/",
    f"/lockgate/dags/{DAG_ID}",
    f"/lockgate/api/dags/{DAG_ID}",
    f"/lockgate/dags/{DAG_ID}/docs?table=orders&run_id=x",
    "/lockgate/static/gx/styles/data_docs_default_styles.css",
]
TRAVERSALS = [
    "/lockgate/static/..%2f..%2f..%2fsettings.py",
    "/lockgate/static/vendor/%2e%2e/%2e%2e/%2e%2e/%2e%2e/ui/app.py",
    "/lockgate/static/%2fetc%2fpasswd",
    f"/lockgate/dags/{DAG_ID}/docs?table=orders&run_id=" + urllib.parse.quote("../../../../../../etc/passwd", safe=""),
    f"/lockgate/dags/{DAG_ID}/docs?table=" + urllib.parse.quote("../../docs/index", safe="") + "&run_id=x",
    "/lockgate/dags/..%2f..%2fetc%2fpasswd",
    "/lockgate/api/dags/..%2f" + DAG_ID,
]


def test_every_route_needs_a_login_and_access_to_the_dag(shop):
    airflow: AirflowStack = shop.airflow
    problems = []
    for route in ROUTES:
        for who, expected in ((None, 401), ("outsider", 403), ("viewer", None), ("admin", None)):
            token = airflow.token(who) if who else None
            status, body = airflow.http("GET", route, token=token)
            # The docs route has no page for run "x": 404 once access is granted.
            wanted = expected or (404 if "run_id=x" in route else 200)
            if status != wanted:
                problems.append(f"GET {route} as {who or 'nobody'}: HTTP {status}, expected {wanted}: {str(body)[:200]}")
    for route in TRAVERSALS:
        status, body = airflow.http("GET", route, token=airflow.token("admin"))
        if status != 404:
            problems.append(f"GET {route} as admin: HTTP {status}, expected 404: {str(body)[:200]}")
    assert not problems, "\n".join(problems)


def test_the_page_reports_every_table_of_the_demo(shop):
    airflow: AirflowStack = shop.airflow
    status, body = airflow.http("GET", f"/lockgate/api/dags/{DAG_ID}", token=airflow.token("viewer"))
    assert status == 200, body
    tables = {t["name"]: t for t in body["tables"]}
    assert set(tables) == {"customers", "products", "orders", "order_items", "payments", "clicks"}
    for name, table in tables.items():
        assert table["runs"], f"{name}: no runs on the page"
        assert sum(r["rows_loaded"] for r in table["runs"]) > 0, f"{name}: no rows loaded"
        assert table["lake_versions"], f"{name}: no lake versions"
    orders = tables["orders"]
    assert orders["state"]["watermark"], "orders: no watermark shown"
    # Every run that was validated links a Data Docs page that renders with no CDN.
    run = orders["runs"][-1]
    query = urllib.parse.urlencode({"table": "orders", "run_id": run["run_id"], "version": run["version"]})
    status, html = airflow.http("GET", f"/lockgate/dags/{DAG_ID}/docs?{query}", token=airflow.token("viewer"))
    assert status == 200, html
    from lockgate.ui.vendor import external_urls

    assert not external_urls(html), f"the Data Docs page still loads from the internet: {external_urls(html)}"
    for asset in sorted(set(_static_assets(html)))[:40]:
        status, _ = airflow.http("GET", asset, token=airflow.token("viewer"))
        assert status == 200, f"{asset}: HTTP {status}"


def _static_assets(html: str) -> list[str]:
    import re

    return re.findall(r"""(?:src|href)=["'](/lockgate/static/[^"'?#]+)""", html)


# -- the page in a browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def _log_in(page, base: str, user: str = "admin") -> None:
    """The simple auth manager's login form, as a person fills it."""
    page.goto(f"{base}/")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(USERS[user][1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)


def test_browser_shows_the_page_and_triggers_a_run_from_the_form(shop, browser):
    airflow: AirflowStack = shop.airflow
    base = f"http://127.0.0.1:{airflow.api_port}"
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        _log_in(page, base)
        # 1. The Lockgate page in Airflow's navigation: the demo's tables with rows and a chart.
        page.goto(f"{base}/plugin/lockgate")
        frame = page.frame_locator("iframe").first
        card = frame.locator(".source[data-source='shop']")
        card.wait_for(timeout=60_000)
        text = card.inner_text()
        for table in ("customers", "products", "orders", "order_items", "payments", "clicks"):
            assert table in text
        assert frame.locator("svg.chart rect.loaded").count() > 0
        page.screenshot(path=str(ARTIFACTS / "lockgate-overview.png"), full_page=True)
        before = {r["run_id"] for r in airflow.dag_runs(DAG_ID)}

        # 2. The trigger form: one table, full refresh.
        page.goto(f"{base}/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=30_000)
        _fill_trigger_form(page, dialog, table="orders")
        page.screenshot(path=str(ARTIFACTS / "trigger-form.png"), full_page=True)
        dialog.get_by_role("button", name="Trigger").last.click()

        runs = airflow.wait_runs(
            DAG_ID, lambda rs: any(r["run_id"] not in before and r["state"] in ("success", "failed") for r in rs),
            what="the run triggered from the form", timeout=600,
        )
        run = next(r for r in runs if r["run_id"] not in before)
        assert run["state"] == "success", airflow.diagnostics(DAG_ID)
        _assert_ran_only(shop, run["run_id"], table="orders")

        # 3. The run on the DAG's Lockgate tab.
        page.goto(f"{base}/dags/{DAG_ID}/plugin/lockgate-dag")
        frame = page.frame_locator("iframe").first
        runs_table = frame.locator(".table[data-table='orders'] table.runs")
        runs_table.wait_for(timeout=60_000)
        assert run["run_id"] in runs_table.inner_text()
        page.screenshot(path=str(ARTIFACTS / "lockgate-dag-tab.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
        (ARTIFACTS / "failure.html").write_text(page.content(), encoding="utf-8")
        raise
    finally:
        context.close()


def _fill_trigger_form(page, dialog, *, table: str) -> None:
    """In "Run Parameters" (open by default): switch full_refresh on, pick one table."""
    switch = dialog.locator("[id='switch:element_full_refresh']")
    switch.wait_for(timeout=30_000)
    switch.click()
    assert switch.get_attribute("data-state") == "checked"
    dialog.locator("#element_tables").click()
    page.get_by_role("option", name=table, exact=True).click()
    # The defaults are valid: nothing else needs filling for the Trigger button to work.
    assert dialog.get_by_role("button", name="Trigger").last.is_enabled()


def _assert_ran_only(shop, run_id: str, *, table: str) -> None:
    """The run did exactly what the form asked: only ``table``, as a full refresh."""
    from lockgate import warehouse

    with warehouse.connect(shop.warehouse, read_only=True) as conn:
        rows = conn.execute(
            "SELECT table_name, status, slice_lo, slice_hi FROM lockgate.runs WHERE run_id = ?", [run_id]
        ).fetchall()
    assert [r[0] for r in rows] == [table], f"the run touched {rows}"
    assert rows[0][1] == "published", rows
    assert rows[0][2] is None, f"not a full refresh: slice starts at {rows[0][2]}"
