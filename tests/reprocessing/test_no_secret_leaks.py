"""No log, lake file or audit row of a run carries the source's password.

A real PostgreSQL role (and a MariaDB user) gets a password with ``%``, ``'``, ``@`` and
``/`` in it — characters that must be percent-encoded in the connection URI, so a
driver or a log may show the password raw, encoded, double-encoded or escaped. The
four stages run for an interval through that connection, then failures that reach
the source-error explanation are provoked. Every captured log record (DEBUG, py4j's
protocol log included: it shows every JVM call with its arguments), stdout/stderr,
every file under the lake root (manifests, plans, quality reports, Data Docs) and
every row of the warehouse's ``lockgate`` tables is searched for the password in
every spelling of :mod:`tests.leaks`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from urllib.parse import quote

import airflow.sdk  # noqa: F401 - Airflow configures logging on import: before caplog, not during the test
import pytest
from lockgate import warehouse
from lockgate.errors import SourceError

from tests.leaks import find, scan_tree
from tests.reprocessing.harness import TABLE_CONFIG, Source, day

pytestmark = pytest.mark.integration

PASSWORD = "p%40ss'w@rd/x%2F"
WRONG = "wr%25ng'p@ss/y%2Fz"


def _uri(scheme: str, user: str, password: str, port: int, database: str) -> str:
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}/{quote(database, safe='')}"


@pytest.fixture
def pg_role(pg_conn, pg_database):
    """A login role whose password needs percent-encoding in a URI (dropped afterwards)."""
    from psycopg import sql

    role = f"lockgate_leak_{uuid.uuid4().hex[:8]}"
    pg_conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD)))
    try:
        for statement in (
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT pg_read_all_stats TO {role}",  # what README asks of a source role
        ):
            pg_conn.execute(sql.SQL(statement).format(db=sql.Identifier(pg_database), role=sql.Identifier(role)))
        yield role
    finally:
        pg_conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        pg_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def maria_user(mariadb_conn):
    user = f"lg_leak_{uuid.uuid4().hex[:8]}"
    with mariadb_conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (PASSWORD,))  # %% is pymysql's '%'
    try:
        yield user
    finally:
        with mariadb_conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def _warehouse_rows(path: str) -> list[str]:
    """Every row of every table of the warehouse's ``lockgate`` schema, as text."""
    with warehouse.connect(path, read_only=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lockgate'"
            ).fetchall()
        ]
        assert {"runs", "state"} <= set(tables), tables
        rows = []
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM lockgate."{table}"')
            names = [d[0] for d in cursor.description]
            rows += [f"lockgate.{table}: {dict(zip(names, row, strict=True))!r}" for row in cursor.fetchall()]
        return rows


def _capture_debug(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("lockgate", "py4j", "py4j.clientserver", "py4j.java_gateway"):
        caplog.set_level(logging.DEBUG, logger=name)


def _failure(src: Source, table: str, run) -> str:
    with pytest.raises(SourceError) as info:
        src.stage("extract", table, run)
    logging.getLogger("lockgate").error("extract failed: %s", info.value, exc_info=info.value)
    return str(info.value)


def test_a_run_with_a_percent_encoded_password_leaks_it_nowhere(
    pg_conn, pg_database, lake_env, spark, pg_role, maria_user, mariadb_conn, mariadb_database, monkeypatch,
    caplog, capfd,
):  # fmt: skip
    _capture_debug(caplog)
    # --- PostgreSQL: a whole interval, both table modes, through the role -------------
    pg = Source("postgres", pg_conn, pg_database, lake_env, spark)
    pg.create("events")
    pg.create("orders")
    pg.insert_events(1, 60, day(0), timedelta(minutes=20))
    pg.insert_orders(1, 40, day(0), timedelta(minutes=30))
    pg.sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{pg_role}"')
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", _uri("postgres", pg_role, PASSWORD, 5432, pg_database))
    for table in ("events", "orders"):
        assert pg.run_interval(table, 0)["rows"] > 0
        pg.assert_converged(table)

    messages = []
    # a table that does not exist (explained by the source-error path)
    pg.tables["ghost"] = {**TABLE_CONFIG["events"], "name": "ghost"}
    messages.append(_failure(pg, "ghost", pg.run_info(0)))
    assert "does not exist" in messages[-1]
    # a database that does not exist, and a port nothing listens on
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", _uri("postgres", pg_role, WRONG, 5432, f"{pg_database}_gone"))
    messages.append(_failure(pg, "events", pg.run_info(1)))
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", _uri("postgres", pg_role, WRONG, 1, pg_database))
    messages.append(_failure(pg, "events", pg.run_info(1)))
    assert "not reachable" in messages[-1]

    # --- MariaDB: the JDBC reader, and a password the server really refuses ------------
    maria = Source("mariadb", mariadb_conn, mariadb_database, lake_env, spark)
    maria.create("orders")
    maria.insert_orders(1, 30, day(2), timedelta(minutes=30))
    maria.sql(f"GRANT SELECT ON `{mariadb_database}`.* TO '{maria_user}'@'%'")
    maria.sql(f"GRANT PROCESS ON *.* TO '{maria_user}'@'%'")  # to see open transactions
    # its own warehouse table beside PostgreSQL's rp.orders
    maria.tables = {"maria_orders": {**TABLE_CONFIG["orders"], "name": "maria_orders", "source_table": "orders"}}
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", _uri("mysql", maria_user, PASSWORD, 3306, mariadb_database))
    assert maria.run_interval("maria_orders", 2)["rows"] == 30
    monkeypatch.setenv("AIRFLOW_CONN_RP_SRC", _uri("mysql", maria_user, WRONG, 3306, mariadb_database))
    messages.append(_failure(maria, "maria_orders", maria.run_info(3)))
    assert "credentials were refused" in messages[-1]

    # --- everything the run left behind --------------------------------------------------
    out, err = capfd.readouterr()
    records = [r.getMessage() for r in caplog.records]
    assert any("extracting" in m or "slice" in m for m in records), "the lockgate logger was not captured"
    assert any("Command to send" in m for m in records), "py4j's DEBUG log was not captured"
    lake = lake_env.lake_root
    names = {p.name for p in lake.rglob("*") if p.is_file()}
    assert "_manifest.json" in names and any(n.endswith(".html") for n in names), sorted(names)
    assert any(p.suffix == ".json" and "quality" in p.parts for p in lake.rglob("*")), "no quality report"
    rows = _warehouse_rows(lake_env.warehouse)

    leaks = {}
    for where, text in [
        ("log records", "\n".join(records)),
        ("formatted log", caplog.text),
        ("stdout", out),
        ("stderr", err),
        ("error messages", "\n".join(messages)),
        ("warehouse rows", "\n".join(rows)),
    ]:
        if hits := find(text, PASSWORD, WRONG):
            leaks[where] = hits[:5]
    leaks.update(scan_tree(lake, PASSWORD, WRONG))
    assert not leaks, leaks

    # The search would have found it: plant the URI in the lake and look again.
    planted = lake / "raw" / "planted.txt"
    planted.write_text(_uri("postgres", pg_role, PASSWORD, 5432, pg_database))
    assert set(scan_tree(lake, PASSWORD)) == {str(planted)}
    assert find("\n".join([*rows, repr(PASSWORD)]), PASSWORD)
