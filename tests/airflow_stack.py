"""One real Airflow stack shared by every test that runs DAGs through Airflow.

The fixture ``airflow_stack`` starts it once per session (imported by
``tests/conftest.py``, so any test folder can use it); the hook below stops it right
after the last test that uses it.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from tests.reprocessing.airflow_harness import PROJECT_ROOT, USERS, AirflowStack, ScenarioSource, tail

# -- the shared Airflow stack -------------------------------------------------------------


def _scenario_sources(session: pytest.Session) -> list[ScenarioSource]:
    """The ``AIRFLOW_SOURCES`` of every collected test module, each source once."""
    sources: dict[str, ScenarioSource] = {}
    for module in {item.module for item in session.items if getattr(item, "module", None) is not None}:
        for source in getattr(module, "AIRFLOW_SOURCES", ()):
            if source.name in sources and sources[source.name] is not source:
                raise pytest.UsageError(f"two test modules declare the Airflow source '{source.name}'")
            sources[source.name] = source
    return sorted(sources.values(), key=lambda s: s.name)


def _create_database(source: ScenarioSource) -> dict:
    import psycopg

    from tests.conftest import PG_HOST, PG_PORT, PG_USER, _unavailable

    name = f"lockgate_{source.name}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True,
                                connect_timeout=5)
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": name}
    with psycopg.connect(**dsn, autocommit=True) as conn:
        source.populate(conn)
    return dsn


def _drop_databases(dsns) -> None:
    import psycopg

    from tests.conftest import PG_HOST, PG_PORT, PG_USER

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as admin:
        for dsn in dsns:
            admin.execute(f'DROP DATABASE IF EXISTS "{dsn["dbname"]}" WITH (FORCE)')


class SharedStack:
    """What the tests get: the running stack and where each source's data lives."""

    def __init__(self, root: Path, airflow: AirflowStack, server, env: dict, databases: dict[str, dict]):
        self.closer = None  # stops everything; set by the fixture
        self.root = root
        self.airflow = airflow
        self.spark = server
        self.env = env
        self.databases = databases
        self.sources_dir = root / "sources"
        self.lake_root = root / "lake"
        self.warehouse = env["LOCKGATE_WAREHOUSE"]

    def write_source(self, source: ScenarioSource, text: str | None = None) -> None:
        """(Re)write the source file; the dag-processor picks it up on its next parse."""
        path = self.sources_dir / f"{source.name}.yml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(source.source_file_text(text), encoding="utf-8")
        tmp.replace(path)

    def close(self, *, failed: bool = False) -> None:
        """Stop the stack now (idempotent); its log tails are printed if a test failed."""
        closer, self.closer = self.closer, None
        if closer is not None:
            closer(failed)


_OPEN_STACKS: list[SharedStack] = []


@pytest.fixture(scope="session")
def airflow_stack(request, tmp_path_factory):
    """One Spark Connect server and one Airflow 3 deployment (api-server, dag-processor,
    scheduler, LocalExecutor, SQLite metadata) for the session.

    Every collected module's ``AIRFLOW_SOURCES`` becomes a source file in one sources
    folder, hence a DAG ``ingest_<source>`` (paused at creation), with its own
    PostgreSQL database and connection. The scheduler runs from the start: tests create
    backfills with :meth:`AirflowStack.create_backfill`, which checks that they exist.
    """
    from lockgate import spark_server
    from lockgate.settings import load_settings

    sources = _scenario_sources(request.session)
    if not sources:
        pytest.skip("no collected test module declares AIRFLOW_SOURCES")
    root = tmp_path_factory.mktemp("airflow-stack")
    databases: dict[str, dict] = {}
    connections: dict[str, str] = {}
    try:
        for source in sources:
            if source.connection_uri is not None:
                connections[source.name] = source.connection_uri(root / "sources-data" / source.name)
            else:
                databases[source.name] = _create_database(source)
                connections[source.name] = "postgres://{user}@{host}:{port}/{dbname}".format(**databases[source.name])
    except BaseException:
        _drop_databases(databases.values())
        raise
    (root / "sources").mkdir()
    # The project's suites (the demo's shop/*), beside which tests may add their own.
    shutil.copytree(PROJECT_ROOT / "expectations", root / "expectations")
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in USERS.items()}), encoding="utf-8")
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(PROJECT_ROOT / "dags" / "lockgate_dags.py", dags / "lockgate_dags.py")
    spark_port, api_port = spark_server.free_port(), spark_server.free_port()
    while api_port == spark_port:
        api_port = spark_server.free_port()
    lockgate_env = {
        "LOCKGATE_HOME": str(PROJECT_ROOT),
        "LOCKGATE_SOURCES_DIR": str(root / "sources"),
        "LOCKGATE_EXPECTATIONS_DIR": str(root / "expectations"),
        "LOCKGATE_LAKE_ROOT": str(root / "lake"),
        "LOCKGATE_WAREHOUSE": str(root / "warehouse" / "warehouse.duckdb"),
        "LOCKGATE_STATE_DIR": str(root / "state"),
        "LOCKGATE_SPARK_REMOTE": f"sc://127.0.0.1:{spark_port}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        # Real users (see USERS), so that pages and plugin routes are tested with
        # authentication and per-role authorisation.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{role}" for n, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    for source in sources:
        lockgate_env[f"AIRFLOW_CONN_{source.connection_id.upper()}"] = connections[source.name]
    airflow = AirflowStack.create(root / "airflow", api_port, lockgate_env, parallelism=4)
    stack = SharedStack(root, airflow, None, lockgate_env, databases)
    for source in sources:
        stack.write_source(source)
    migrate = airflow.start_migrate()  # meanwhile the Spark Connect server starts
    failures_before = request.session.testsfailed

    def close(failed: bool) -> None:
        if migrate.poll() is None:
            migrate.kill()
        airflow.stop()
        if stack.spark is not None:
            spark_server.stop(stack.spark)
        if failed or request.session.testsfailed > failures_before:
            print("\n===== Airflow logs (tails) =====\n" + airflow.log_tails(60), file=sys.stderr)
            if stack.spark is not None:
                print(f"===== Spark Connect log =====\n{tail(stack.spark.log_path, 40)}", file=sys.stderr)
        _drop_databases(databases.values())

    stack.closer = close
    try:
        stack.spark = spark_server.start_connect_server(spark_port, settings=load_settings(), log_dir=root / "spark")
        code = migrate.wait(timeout=600)
        assert code == 0, f"airflow db migrate failed:\n{tail(airflow.home / 'logs' / 'db-migrate.log')}"
        airflow.use_wal()
        airflow.start_api_server()
        airflow.start_dag_processor()
        airflow.wait_api_ready()
        for source in sources:
            airflow.wait_dag_parsed(source.dag_id)
        airflow.start_scheduler()
    except BaseException:
        stack.close(failed=True)
        raise
    _OPEN_STACKS.append(stack)
    try:
        yield stack
    finally:
        _OPEN_STACKS.remove(stack)
        stack.close()


def pytest_collection_modifyitems(session, config, items):
    """Run the modules that use the shared stack one after another (from where the first
    of them is), so the stack is up for one stretch and stopped before the rest."""
    users = {item.module for item in items if "airflow_stack" in getattr(item, "fixturenames", ())}
    if not users:
        return
    first = next(i for i, item in enumerate(items) if item.module in users)
    grouped = [item for item in items if item.module in users]
    rest = [item for item in items if item.module not in users]
    items[:] = rest[:first] + grouped + rest[first:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the shared stack right after the last test that uses it, so that the tests
    after it (the unit tests) do not share the two cores with an idle Airflow and JVM."""
    yield
    if not _OPEN_STACKS or "airflow_stack" not in getattr(item, "fixturenames", ()):
        return
    # The test's DAGs stop here: no scheduled run of theirs (say, after midnight) competes
    # with the next test for the cores.
    for source in getattr(item.module, "AIRFLOW_SOURCES", ()):
        for stack in _OPEN_STACKS:
            try:
                stack.airflow.set_paused(source.dag_id, True)
            except Exception as exc:  # noqa: BLE001 - a stopped stack, say; nothing to pause then
                print(f"could not pause {source.dag_id}: {exc}", file=sys.stderr)
    items = item.session.items
    later = items[items.index(item) + 1:] if item in items else []
    if not any("airflow_stack" in getattr(i, "fixturenames", ()) for i in later):
        for stack in list(_OPEN_STACKS):
            stack.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the shared stack gets the log tails of its DAGs' tasks."""
    outcome = yield
    report = outcome.get_result()
    stack = item.funcargs.get("airflow_stack") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and isinstance(stack, SharedStack):
        dag_ids = [s.dag_id for s in getattr(item.module, "AIRFLOW_SOURCES", ())]
        try:
            text = "\n".join(stack.airflow.task_log_tails(dag_id) for dag_id in dag_ids)
            text += "\n" + stack.airflow.log_tails(25)
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the failure
            text = f"(could not read the logs: {exc})"
        report.sections.append(("Airflow logs", text))
