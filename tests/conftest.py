"""Shared fixtures: one local Spark session, isolated lake/warehouse folders, and the
machine's PostgreSQL and MariaDB.

When ``CI=true`` a database that cannot be reached fails the test instead of skipping
it: CI must never go green by testing nothing.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# py4j logs "Closing down clientserver connection" from __del__ at interpreter exit,
# after pytest closed the log stream; keep that noise out of the test output.
logging.getLogger("py4j").setLevel(logging.WARNING)
# moto's server logs every request.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its home at import time: give the test session its own, so tests never
# touch ~/airflow or the demo's metadata database.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lockgate-test-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT_ROOT / "plugins")
# The suite never reads the developer's own Lockgate settings.
for _name in [n for n in os.environ if n.startswith("LOCKGATE_") and not n.startswith("LOCKGATE_TEST_")]:
    del os.environ[_name]
# Spark in-process unless a test starts a server: a developer's `make airflow-ui` keeps one
# on 15002, which lockgate.spark would otherwise use.
os.environ["LOCKGATE_SPARK_CONNECT_PORT"] = "off"

PG_HOST = os.environ.get("LOCKGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LOCKGATE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LOCKGATE_TEST_PG_USER", "postgres")
MARIA_HOST = os.environ.get("LOCKGATE_TEST_MARIADB_HOST", "127.0.0.1")
MARIA_PORT = int(os.environ.get("LOCKGATE_TEST_MARIADB_PORT", "3306"))
MARIA_USER = os.environ.get("LOCKGATE_TEST_MARIADB_USER", "root")


def _unavailable(what: str, exc: Exception):
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _fresh_fault_counts():
    """``LOCKGATE_FAILPOINTS``' ``#n`` counts hits in this process: every test counts from 0."""
    from lockgate import faults

    faults.reset()


@pytest.fixture(scope="session")
def spark():
    from lockgate.spark import get_spark

    session = get_spark("lockgate-tests")
    yield session
    session.stop()


@pytest.fixture
def lake_env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the lake and the warehouse at fresh places; returns the settings.

    The lake is a local folder, or with ``@pytest.mark.parametrize("lake_env", ["local",
    "s3"], indirect=True)`` also a fresh prefix in the session's S3 server. ``"pg_warehouse"``:
    a local lake and a fresh PostgreSQL database as the warehouse (:func:`pg_warehouse`)."""
    from lockgate.settings import load_settings

    if getattr(request, "param", "local") == "pg_warehouse":
        request.getfixturevalue("pg_warehouse")
    server = None
    if getattr(request, "param", "local") == "s3":
        server = request.getfixturevalue("s3_server")
        monkeypatch.setenv("LOCKGATE_LAKE_ROOT", f"s3://{server.bucket}/{uuid.uuid4().hex[:12]}")
        monkeypatch.setenv("LOCKGATE_STAGING_DIR", str(tmp_path / "staging"))
    else:
        monkeypatch.setenv("LOCKGATE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LOCKGATE_WAREHOUSE", str(tmp_path / "warehouse" / "warehouse.duckdb"))
    yield load_settings()
    if server is not None:
        _empty_s3(server.endpoint)


#: Parametrise a warehouse-level suite over both warehouses (``indirect=True`` on lake_env).
WAREHOUSES = ["local", "pg_warehouse"]


@pytest.fixture
def pg_warehouse(monkeypatch: pytest.MonkeyPatch):
    """A fresh PostgreSQL database as the warehouse: ``LOCKGATE_WAREHOUSE_CONN_ID`` and its
    Airflow connection (inherited by Airflow's processes); yields the database name."""
    with _fresh_pg_database("lockgate_wh") as name:
        monkeypatch.setenv("LOCKGATE_WAREHOUSE_CONN_ID", "lockgate_warehouse")
        monkeypatch.setenv("AIRFLOW_CONN_LOCKGATE_WAREHOUSE", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
        yield name


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    conn_id: str = "lockgate_lake"


#: The test server's made-up credentials (tests check that no message prints them).
S3_KEY, S3_SECRET = "lockgate-test-key", "lockgate-test-secret-3f9a"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 for the session, a versioned bucket, and the lake's
    Airflow connection (``AIRFLOW_CONN_LOCKGATE_LAKE``, inherited by Airflow's processes)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AIRFLOW_CONN_LOCKGATE_LAKE"] = json.dumps({
        "conn_type": "aws", "login": S3_KEY, "password": S3_SECRET,
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    })  # fmt: skip
    _empty_s3(endpoint)
    yield S3Server(endpoint, "lockgate-lake")
    os.environ.pop("AIRFLOW_CONN_LOCKGATE_LAKE", None)
    server.stop()


def _empty_s3(endpoint: str) -> None:
    """Forget every object moto holds (it keeps them all, every version, in this process's
    memory: ~0.5 GB per reprocessing scenario) and create the versioned lake bucket."""
    import boto3
    import requests

    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, region_name="us-east-1"
    )
    client.create_bucket(Bucket="lockgate-lake")
    client.put_bucket_versioning(Bucket="lockgate-lake", VersioningConfiguration={"Status": "Enabled"})


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for the session; yields its name."""
    with _fresh_pg_database("lockgate_it") as name:
        yield name


@contextmanager
def _fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards (connections and all)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_conn(pg_database):
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=pg_database, autocommit=True) as conn:
        # Every test starts from an empty public schema in the session's database.
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
        yield conn


@pytest.fixture(scope="session")
def mariadb_database():
    import pymysql

    name = f"lockgate_it_{uuid.uuid4().hex[:8]}"
    try:
        admin = pymysql.connect(host=MARIA_HOST, port=MARIA_PORT, user=MARIA_USER, password="", connect_timeout=5)
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"MariaDB at {MARIA_HOST}:{MARIA_PORT}", exc)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    admin.close()
    yield name
    admin = pymysql.connect(host=MARIA_HOST, port=MARIA_PORT, user=MARIA_USER, password="")
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def mariadb_conn(mariadb_database):
    import pymysql

    conn = pymysql.connect(
        host=MARIA_HOST, port=MARIA_PORT, user=MARIA_USER, password="", database=mariadb_database,
        charset="utf8mb4", autocommit=True,
    )
    # Every test starts from an empty database.
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        for (table,) in cur.fetchall():
            cur.execute(f"DROP TABLE `{table}`")
    yield conn
    conn.close()


# The shared Airflow stack (and the hook that stops it after its last test), for every
# test folder.
from tests.airflow_stack import (  # noqa: E402, F401
    airflow_stack,
    pytest_collection_modifyitems,
    pytest_runtest_teardown,
)
